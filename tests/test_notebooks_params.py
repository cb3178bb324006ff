"""Issue 13: the notebooks as users run them. Every notebook runs with its own defaults (papermill with
only the profile set, as a fresh-kernel Run All does), the parameters users pass select or build the
variant, and a parameter the notebook does not declare or a bad value stops the first code cell
before anything trains.

Everything runs on the ci profile into temporary folders (tiny synthetic data, fresh runs/), through
the kernel the notebooks' headers name (``mace-study``, registered for the test like the runner does).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mace_core.jupyter.kernel import KERNEL_NAME, kernel_dir
from mace_core.study import registry, runner
from mace_core.study.variants import DATA_ROOT_ENV, list_experiments

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("nb")
    runs = root / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(DATA_ROOT_ENV, str(root / "data"))
        mp.setenv("JUPYTER_PATH", str(kernel_dir(runs)))
        mp.chdir(REPO)
        runner.ensure_data("ci", REPO / "params")
        yield {"root": root, "runs": runs}


def execute(env, name: str, **parameters):
    """papermill on the jupytext notebook; the kernel is the one its header names."""
    import jupytext
    import papermill

    nb = jupytext.read(NOTEBOOKS / f"{name}.py")
    assert nb.metadata["kernelspec"]["name"] == KERNEL_NAME
    out = env["root"] / f"{name}-{len(os.listdir(env['root']))}.ipynb"
    parameters = {"profile": "ci", "runs_dir": str(env["runs"]), **parameters}
    papermill.execute_notebook(nb, str(out), parameters=parameters, cwd=str(REPO), progress_bar=False,
                               start_timeout=120)
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


def test_every_notebook_runs_with_its_defaults(env):
    names = [n for e in list_experiments(REPO / "params") for n in (e, f"{e}_summary")]
    assert len(names) == 14
    for name in names:   # per-run page first, then its summary (which reads what the page trained)
        path = execute(env, name)
        assert outputs(path) is not None
    text = outputs(env["root"] / next(p for p in os.listdir(env["root"]) if p.startswith("01_backbones-")))
    assert "variant resnet50" in text   # the default of the backbone page is the resnet50 YAML


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


@pytest.mark.parametrize("name, parameters, said", [
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
])
def test_bad_parameters_stop_the_first_code_cell(env, name, parameters, said):
    message = failure(env, name, **parameters)
    assert said in message, message


def test_a_users_variant_yaml_joins_the_study(tmp_path, monkeypatch):
    """A YAML dropped into params/05_data_efficiency/ is trained by the study and appears in the
    chapter's table, its finding and the results at a glance, with no code change."""
    import shutil

    from mace_core.book.build import SUMMARY

    params = tmp_path / "params"
    shutil.copytree(REPO / "params", params)
    (params / "05_data_efficiency" / "fraction_33.yaml").write_text("data:\n  id_fraction: 0.33\n")
    for name in ("notebooks", "book"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("_build", "generated", "_toc.yml"))
    monkeypatch.chdir(tmp_path)
    report = runner.run_study("ci", params_dir=params, runs_dir=tmp_path / "runs", book_dir=tmp_path / "book",
                              notebooks_dir=tmp_path / "notebooks", data_root=str(tmp_path / "data"),
                              only="00,05", progress=False)
    assert report.ok, report.failed
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


def test_llcm_notebook_runs_with_its_defaults(env, monkeypatch):
    """Issue 22, point 7: 07_llcm on its defaults (no LLCM data) generates the profile's small
    synthetic LLCM-like tree and says it is synthetic."""
    from mace_core.study.variants import LLCM_ROOT_ENV

    root = env["root"] / "llcm-like"
    monkeypatch.setenv(LLCM_ROOT_ENV, str(root))   # where data/synthetic-llcm-ci would go (kept out of the repo)
    text = outputs(execute(env, "07_llcm"))
    assert (root / "synthetic.json").is_file()
    assert "data: synthetic LLCM" in text and "training identities: 9" in text and "seeds: [0, 1]" in text
