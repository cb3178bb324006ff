"""Issue 13: the notebooks as users run them. Every notebook runs with its own defaults (papermill with
only the profile set, as a fresh-kernel Run All does), the parameters users pass select or build the
variant, and a parameter the notebook does not declare or a bad value stops the first code cell
before anything trains.

Everything runs on the ci profile into temporary folders (tiny synthetic data, fresh runs/), through
the kernel the notebooks' headers name (``mace-study``, registered for the test like the runner does).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from mace_core.jupyter.kernel import KERNEL_NAME, kernel_dir
from mace_core.study import registry, runner
from mace_core.study.variants import DATA_ROOT_ENV, list_experiments

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
# the tests that start kernels are marked slow; the first to ask for the session's ci study (conftest.py)
# also waits for it to run: its time counts
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def env(tmp_path_factory, ci_study):
    """The session's ci data, and a copy of its run cache: the notebooks read the study's runs (nothing
    retrains) and the ad-hoc variants below train into the copy only."""
    root = tmp_path_factory.mktemp("nb")
    runs = ci_study.copy_runs(root / "runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(DATA_ROOT_ENV, str(ci_study.data))
        mp.setenv("JUPYTER_PATH", str(kernel_dir(runs)))
        mp.chdir(REPO)
        yield {"root": root, "runs": runs}


def execute(env, name: str, **parameters):
    """papermill on the jupytext notebook; the kernel is the one its header names."""
    import jupytext
    import papermill

    nb = jupytext.read(NOTEBOOKS / f"{name}.py")
    assert nb.metadata["kernelspec"]["name"] == KERNEL_NAME
    out = env["root"] / f"{name}-{len(os.listdir(env['root']))}.ipynb"
    parameters = {"profile": "ci", "runs_dir": str(env["runs"]), **parameters}
    # the kernel is stopped at once after its last cell, as the study does (its outputs are complete;
    # the polite shutdown only waits 1-2 s for the interpreter's teardown, which no test here reads)
    papermill.execute_notebook(nb, str(out), parameters=parameters, cwd=str(REPO), progress_bar=False,
                               start_timeout=120, shutdown_kernel="immediate")
    return out


def outputs(path: Path) -> str:
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    return "\n".join(o.get("text", "") if o.get("output_type") == "stream" else str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def failure(env, name: str, **parameters) -> str:
    from papermill.exceptions import PapermillExecutionError

    before = sorted(p.name for p in (env["runs"] / "ci").glob("*")) if (env["runs"] / "ci").is_dir() else []
    with pytest.raises(PapermillExecutionError) as info:
        execute(env, name, **parameters)
    after = sorted(p.name for p in (env["runs"] / "ci").glob("*")) if (env["runs"] / "ci").is_dir() else []
    assert after == before, "a refused notebook must not start a training run"
    assert info.value.ename == "MaceError", info.value
    return str(info.value.evalue)


def _trained(env) -> set[str]:
    folder = env["runs"] / "ci"
    return {p.name for p in folder.iterdir() if registry.is_complete(p)} if folder.is_dir() else set()


@pytest.mark.slow
@pytest.mark.xdist_group("ci_study")
def test_every_notebook_runs_with_its_defaults(env, ci_study):
    experiments = list_experiments(REPO / "params")
    names = [n for e in experiments for n in (e, f"{e}_summary")]
    assert len(names) == 14
    for name in experiments:   # per-run pages, on the study's runs (nothing trains)
        path = execute(env, name)
        assert outputs(path) is not None
    text = outputs(env["root"] / next(p for p in os.listdir(env["root"]) if p.startswith("01_backbones-")))
    assert "variant resnet50" in text   # the default of the backbone page is the resnet50 YAML
    # summaries: the session's study executed each one in a fresh kernel with nothing set but the
    # profile and the folders (a summary's only parameters), i.e. with its defaults
    for experiment in experiments:
        generated = ci_study.book / "generated" / experiment
        stamp = json.loads((generated / ".stamps" / "summary.json").read_text())
        assert sorted(stamp["parameters"]) == ["params_dir", "profile", "runs_dir"], experiment
        assert stamp["parameters"]["profile"] == "ci"
        assert outputs(generated / "summary.ipynb"), f"{experiment}_summary: no output"


@pytest.mark.slow
@pytest.mark.xdist_group("ci_study")
def test_parameters_select_a_yaml_or_build_an_adhoc_variant(env):
    # a value a YAML names is that variant (no new run: fraction_50 of the ci profile)
    path = execute(env, "05_data_efficiency", fraction=0.5)
    assert "variant fraction_50" in outputs(path)
    before = _trained(env)
    # a value no YAML names becomes an ad-hoc variant, trained once and cached by its config
    path = execute(env, "05_data_efficiency", fraction=0.33)
    text = outputs(path)
    assert "ad-hoc variant fraction_100+fraction=0.33" in text and "data.id_fraction = 0.33" in text
    new = _trained(env) - before
    assert len(new) == 1
    again = execute(env, "05_data_efficiency", fraction=0.33)
    assert _trained(env) - before == new, "the ad-hoc run must be reused, not retrained"
    assert "identity fraction 33%" in outputs(again)
    # a backbone no YAML names, with generic overrides
    path = execute(env, "01_backbones", backbone="resnet10t", overrides={"train.epochs": 1, "train.steps_per_epoch": 2})
    text = outputs(path)
    assert "model.backbone = 'resnet10t'" in text and "train.epochs = 1" in text and "backbone: resnet10t" in text
    # test-time sweeps: pool sizes and fusion rules, occlusion types (no training beyond the baseline's run)
    path = execute(env, "04_multi_query", pool_sizes=[1, 2], fusions=["max"])
    assert "multi_query.n = [1, 2]" in outputs(path) and "multi_query.fusion = ['max']" in outputs(path)
    before = _trained(env)
    path = execute(env, "06_occlusion", occlusion_types=["upper_body"])
    assert "occlusion.types = ['upper_body']" in outputs(path)
    assert _trained(env) == before


BAD_PARAMETERS = [
    ("05_data_efficiency", {"fraction": 0}, "in (0, 1]"),
    ("05_data_efficiency", {"fraction": 1.5}, "in (0, 1]"),
    ("05_data_efficiency", {"backbone": "resnet34"}, "has no parameter backbone"),
    ("01_backbones", {"backbone": "no_such_net"}, "not a timm model"),
    ("01_backbones", {"backbone": "vit_small_patch16_224"}, "not a supported family"),
    ("06_occlusion", {"occlusion_types": ["left_leg"]}, "use one of: random_rect"),
    ("06_occlusion", {"occlusion": "smoke"}, "use one of: none, random_rect"),
    ("02_attention", {"attention": "transformer"}, "none, cam, sam, dam"),
    ("03_fusion", {"fusion": "sum"}, "concat, adaptive, transform"),
    ("04_multi_query", {"pool_sizes": [0]}, "positive integers"),
    ("00_baseline", {"overrides": {"train.epoch": 3}}, "valid keys under train: train.optimizer"),
    ("00_baseline", {"variant": "nope"}, "use one of: baseline"),
    ("00_baseline_summary", {"variant": "baseline"}, "its parameters are: profile, params_dir, runs_dir"),
]
# through a real kernel too: a parameter the notebook does not declare (read from the kernel's input
# history, papermill's injected cell) and a list value (papermill's translation of it)
IN_KERNEL = [BAD_PARAMETERS[2], BAD_PARAMETERS[5]]
_CHECK_CALL = re.compile(r"\b(notebook_run|check_summary)\(\"(\w+)\", globals\(\)\)")


def first_code_cell_in_process(name: str, runs: Path, **parameters):
    """What the notebook's kernel does up to the parameter check, in this process: the parameters cell,
    papermill's injected cell (as papermill writes it, into the input history ``In`` the check reads),
    then the check the first code cell calls (``notebook_run`` or ``check_summary``), nothing after it."""
    import jupytext
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    from mace_core import study

    nb = load_notebook_node(jupytext.read(NOTEBOOKS / f"{name}.py"))   # as papermill.execute_notebook loads it
    nb = parameterize_notebook(nb, {"profile": "ci", "runs_dir": str(runs), **parameters})
    code = [c for c in nb.cells if c.cell_type == "code"]
    injected = next(i for i, c in enumerate(code) if "injected-parameters" in c.metadata.get("tags", []))
    namespace: dict = {"In": [""]}
    for cell in code[:injected + 1]:
        namespace["In"].append(cell.source)
        exec(compile(cell.source, f"<{name} cell>", "exec"), namespace)
    call = _CHECK_CALL.search(code[injected + 1].source)
    assert call, f"the first code cell of {name} does not check its parameters"
    function, experiment = call.groups()
    assert name.startswith(experiment)
    check = getattr(study, function)
    return check(experiment, namespace, **({"show": False} if function == "notebook_run" else {}))


@pytest.mark.parametrize("name, parameters, said", BAD_PARAMETERS)
def test_bad_parameters_stop_the_first_code_cell(name, parameters, said, tmp_path, monkeypatch):
    from mace_core.errors import MaceError

    monkeypatch.chdir(REPO)
    with pytest.raises(MaceError) as info:
        first_code_cell_in_process(name, tmp_path / "runs", **parameters)
    assert said in str(info.value), str(info.value)
    assert not (tmp_path / "runs").exists(), "a refused notebook must not start a training run"


def test_good_parameters_pass_the_same_check(tmp_path, monkeypatch):
    """The in-process check above refuses only what is wrong: the same path accepts good values."""
    monkeypatch.chdir(REPO)
    page = first_code_cell_in_process("05_data_efficiency", tmp_path / "runs", fraction=0.5)
    assert (page.name, page.adhoc) == ("fraction_50", {})
    assert first_code_cell_in_process("00_baseline_summary", tmp_path / "runs") == ("ci", "params", str(tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.xdist_group("ci_study")
@pytest.mark.parametrize("name, parameters, said", IN_KERNEL)
def test_bad_parameters_stop_the_first_code_cell_in_the_kernel(env, name, parameters, said):
    message = failure(env, name, **parameters)
    assert said in message, message


@pytest.mark.slow
@pytest.mark.xdist_group("ci_study")
def test_a_users_variant_yaml_joins_the_study(ci_study, ci_runs_copy, tmp_path, monkeypatch):
    """A YAML dropped into params/05_data_efficiency/ is trained by the study and appears in the
    chapter's table, its finding and the results at a glance, with no code change. (On a copy of the
    session's ci run cache: only the user's variant trains.)"""
    import shutil

    from mace_core.book.build import SUMMARY

    params = tmp_path / "params"
    shutil.copytree(REPO / "params", params)
    (params / "05_data_efficiency" / "fraction_33.yaml").write_text("data:\n  id_fraction: 0.33\n")
    for name in ("notebooks", "book"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("_build", "generated", "_toc.yml"))
    monkeypatch.chdir(tmp_path)
    report = runner.run_study("ci", params_dir=params, runs_dir=ci_runs_copy, book_dir=tmp_path / "book",
                              notebooks_dir=tmp_path / "notebooks", data_root=str(ci_study.data),
                              only="00,05", progress=False, jobs=2)
    assert report.ok, report.failed
    # every trained run is the user's variant's: the rest came from the cache
    assert report.trained and all("fraction_33" in r["label"] for r in report.trained)
    assert "05_data_efficiency/fraction_33" in [r["label"] for r in report.executed]
    assert any("fraction_33" in r["label"] for r in report.trained)   # its further seed, trained by the runner
    html = tmp_path / "book" / "_build" / "html" / "generated"
    assert (html / "05_data_efficiency" / "fraction_33.html").is_file()
    summary = (html / "05_data_efficiency" / f"{SUMMARY}.html").read_text()
    assert "33%" in summary   # its row in the chapter table
    k = len(list((params / "05_data_efficiency").glob("*.yaml"))) - 1   # fractions compared with 100 %
    finding = summary[summary.rindex("Against all identities"):]
    assert "<strong>33%</strong>" in finding           # the user's fraction is one of the comparisons
    assert "33% vs baseline" in finding[finding.index("Holm family"):]   # and a member of the chapter's family
    # the forest plot of the chapter's family is drawn on the built page
    assert "<img" in summary[summary.index('id="forest-plot"'):]
    overview = (html / "overview.html").read_text()
    assert f"best of {k}" in overview and "overview_forest.png" in overview


@pytest.mark.slow   # a kernel, on the session's ci study (it was in the fast part, which then ran the study)
@pytest.mark.xdist_group("ci_study")
def test_llcm_notebook_runs_with_its_defaults(env, monkeypatch):
    """Issue 22, point 7: 07_llcm on its defaults (no LLCM data) generates the profile's small
    synthetic LLCM-like tree and says it is synthetic."""
    from mace_core.study.variants import LLCM_ROOT_ENV

    root = env["root"] / "llcm-like"
    monkeypatch.setenv(LLCM_ROOT_ENV, str(root))   # where data/synthetic-llcm-ci would go (kept out of the repo)
    text = outputs(execute(env, "07_llcm"))
    assert (root / "synthetic.json").is_file()
    assert "data: synthetic LLCM" in text and "training identities: 9" in text and "seeds: [0, 1]" in text
