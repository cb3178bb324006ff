"""params/ resolution: layering, shared runs, strict keys, the study API's caches, Slurm scripts, the TOC."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from mace_core.cli import main
from mace_core.errors import MaceError
from mace_core.book import build
from mace_core.study import api, list_variants, planning, registry, slurm
from mace_core.study.variants import list_experiments, resolve
from tests._study_helpers import FakeTrainer, make_study

PARAMS = Path(__file__).resolve().parents[1] / "params"
BASELINE_ALIASES = ["00_baseline/baseline", "01_backbones/resnet50", "03_fusion/concat", "04_multi_query/baseline",
                    "05_data_efficiency/fraction_100", "06_occlusion/baseline"]


def _key(label: str, profile: str) -> str:
    experiment, variant = label.split("/")
    return registry.run_key(resolve(experiment, variant, profile, PARAMS).config)


@pytest.mark.parametrize("profile", ["smoke", "paper", "ci"])
def test_baseline_aliases_share_one_run_and_other_variants_do_not(profile):
    keys = {label: _key(label, profile) for label in BASELINE_ALIASES}
    assert len(set(keys.values())) == 1
    others = [f"{e}/{v}" for e in list_experiments(PARAMS) for v in list_variants(e, PARAMS)
              if f"{e}/{v}" not in BASELINE_ALIASES]
    other_keys = {_key(label, profile) for label in others}
    assert len(other_keys) == len(others) == 14 and keys["00_baseline/baseline"] not in other_keys


def test_study_has_the_seven_experiments():
    assert list_experiments(PARAMS) == ["00_baseline", "01_backbones", "02_attention", "03_fusion",
                                        "04_multi_query", "05_data_efficiency", "06_occlusion"]
    assert list_variants("06_occlusion", PARAMS) == ["baseline", "occlusion_horizontal_band", "occlusion_random_rect"]


def test_layers_profile_variant_and_profile_override():
    paper = resolve("01_backbones", "seresnet50", "paper", PARAMS).config
    assert (paper.model.backbone, paper.model.pooling, paper.data.height, paper.train.optimizer) == \
        ("seresnet50", "gem", 288, "sgd")
    smoke = resolve("01_backbones", "seresnet50", "smoke", PARAMS).config
    assert smoke.model.backbone == "seresnet18" and smoke.model.pooling == "gem" and smoke.data.height == 64
    # a layer naming a backbone replaces the previous backbone's kwargs instead of merging into them
    eff = resolve("01_backbones", "efficientnet_b3", "smoke", PARAMS).config
    assert eff.model.backbone == "tinynet_e" and eff.model.backbone_kwargs == {} and eff.data.height == 128
    assert (eff.name, eff.experiment) == ("efficientnet_b3", "01_backbones")


def test_ci_extends_smoke_and_study_section_stays_out_of_the_config():
    ci = resolve("04_multi_query", "baseline", "ci", PARAMS)
    assert ci.config.train.optimizer == "adamw" and ci.config.train.epochs == 2   # from smoke, then ci
    assert ci.study["multi_query"] == {"n": [1, 2, 5, 10, 15, 20], "fusion": ["avg", "max", "weighted"]}
    assert "extends" not in ci.study and Path(ci.config.data.root).is_absolute()


def test_paper_profile_follows_the_thesis():
    c = resolve("00_baseline", "baseline", "paper", PARAMS).config
    assert (c.data.height, c.data.width, c.data.ids_per_batch, c.data.images_per_id) == (288, 144, 8, 4)
    assert (c.model.backbone, c.model.pretrained, c.train.lr, c.train.milestones, c.train.epochs) == \
        ("resnet50", "resnet50.tv_in1k", 0.1, [20, 30], 60)
    assert (c.train.warmup_epochs, c.eval.trials, c.eval.mode, c.eval.gallery) == (10, 10, "all", "agw")


def test_bad_variant_key_is_an_error_naming_the_variant(tmp_path):
    root = make_study(tmp_path, {"00_x": {"typo": "model:\n  backbon: resnet18\n"}})
    with pytest.raises(MaceError, match="00_x/typo on profile tiny: unknown key.*model.backbon"):
        resolve("00_x", "typo", "tiny", root / "params")
    with pytest.raises(MaceError, match="profile 'nope' not found"):
        resolve("00_x", "typo", "nope", root / "params")
    with pytest.raises(MaceError, match="variant 'zzz'"):
        resolve("00_x", "zzz", "tiny", root / "params")


def test_profile_extends_cycle_is_an_error(tmp_path):
    root = make_study(tmp_path, {"00_x": {"a": "{}\n"}})
    (root / "params" / "profiles" / "tiny.yaml").write_text("study:\n  extends: tiny\n")
    with pytest.raises(MaceError, match="extends itself"):
        resolve("00_x", "a", "tiny", root / "params")


def test_code_version_ignores_labels_and_plumbing():
    a = resolve("00_baseline", "baseline", "smoke", PARAMS).config
    b = resolve("03_fusion", "concat", "smoke", PARAMS).config
    b.data.workers = 7
    assert registry.config_hash(a) == registry.config_hash(b)
    b.train.seed = 1
    assert registry.config_hash(a) != registry.config_hash(b)


def test_evaluate_variant_caches_per_eval_settings(tmp_path, monkeypatch):
    root = make_study(tmp_path, {"00_x": {"baseline": "{}\n"}})
    monkeypatch.setattr(api, "_train", FakeTrainer())
    calls = []

    def fake_eval(run, eval_cfg):
        calls.append((eval_cfg.multi_query, eval_cfg.fusion))
        return {"R1": 10.0 * (eval_cfg.multi_query or 1)}

    monkeypatch.setattr(api, "_evaluate", fake_eval)
    args = ("00_x", "baseline", "tiny", root / "params", root / "runs")
    assert api.evaluate_variant(*args, multi_query=5, fusion="max") == {"R1": 50.0}
    assert api.evaluate_variant(*args, multi_query=5, fusion="max") == {"R1": 50.0}
    assert api.evaluate_variant(*args, multi_query=2) == {"R1": 20.0}
    assert calls == [(5, "max"), (2, "avg")]
    assert len(list((api.run_dir_of(*args) / "evals").glob("*.json"))) == 2
    with pytest.raises(MaceError, match="unknown evaluation setting.*multiquery"):
        api.evaluate_variant(*args, multiquery=5)
    with pytest.raises(MaceError, match="eval.multi_query"):
        api.evaluate_variant(*args, multi_query="five")


def test_sweep_evaluations_follow_each_runs_study_section(tmp_path, monkeypatch):
    """multi_query_evals / occlusion_evals: one cached evaluation per run and sweep point, items shaped as the
    chapter tables read them; the sweep is each run's own ``study:`` section unless one is passed."""
    root = make_study(tmp_path, {"04_x": {
        "baseline": "study:\n  multi_query:\n    n: [1, 5]\n    fusion: [avg, max]\n"
                    "  occlusion:\n    types: [upper_body, lower_body]\n",
        "other": "train:\n  lr: 0.2\nstudy:\n  multi_query:\n    n: [2]\n    fusion: [avg]\n"
                 "  occlusion:\n    types: [random_rect]\n"}})
    monkeypatch.setattr(api, "_train", FakeTrainer())
    calls = []

    def fake_eval(run, eval_cfg):
        calls.append((run.variant, eval_cfg.multi_query, eval_cfg.fusion, eval_cfg.occlusion))
        return {"R1": float(eval_cfg.multi_query or 1)}

    monkeypatch.setattr(api, "_evaluate", fake_eval)
    args = ("04_x", "tiny", root / "params", root / "runs")
    for name in ("baseline", "other"):
        api.run_variant("04_x", name, *args[1:])
    runs = api.load_results(*args)
    mq = api.multi_query_evals(runs)
    assert [(e["seed"], e["n"], e["fusion"], e["results"]["R1"]) for e in mq] == [
        (0, 1, "avg", 1.0), (0, 1, "max", 1.0), (0, 5, "avg", 5.0), (0, 5, "max", 5.0), (0, 2, "avg", 2.0)]
    assert api.multi_query_evals(runs) == mq and len(calls) == 5            # cached beside each run
    assert [e["n"] for e in api.multi_query_evals(runs[:1], {"n": [3], "fusion": ["max"]})] == [3]
    occ = api.occlusion_evals(runs)
    assert [(e["model"], e["occlusion"]) for e in occ] == [
        ("baseline", "upper_body"), ("baseline", "lower_body"), ("other", "random_rect")]
    assert calls[-3:] == [("baseline", None, "avg", "upper_body"), ("baseline", None, "avg", "lower_body"),
                          ("other", None, "avg", "random_rect")]
    assert [e["occlusion"] for e in api.occlusion_evals(runs[1:], ["upper_body"])] == ["upper_body"]
    assert api.multi_query_evals([]) == [] and api.occlusion_evals([]) == []


def test_load_results_lists_only_completed_variants(tmp_path, monkeypatch):
    root = make_study(tmp_path, {"00_x": {"baseline": "{}\n", "other": "train:\n  lr: 0.2\n"}})
    monkeypatch.setattr(api, "_train", FakeTrainer())
    assert api.load_results("00_x", "tiny", root / "params", root / "runs") == []
    api.run_variant("00_x", "other", "tiny", root / "params", root / "runs")
    got = api.load_results("00_x", "tiny", root / "params", root / "runs")
    assert [(r.variant, r.results["lr"]) for r in got] == [("other", 0.2)]


def test_slurm_scripts_chain_waves_and_run_one_pair_per_task(tmp_path):
    root = make_study(tmp_path, {"00_baseline": {"baseline": "{}\n"},
                                 "01_lr": {"base": "{}\n", "low": "train:\n  lr: 0.01\n"}})
    (root / "notebooks" / "01_lr_summary.py").write_text("# %%\nx = 1\n")
    written = slurm.write_slurm("tiny", root / "slurm", root / "params", root / "runs", root / "book",
                                root / "notebooks", data_root=str(root / "data"),
                                options=slurm.SlurmOptions(partition="gpu"), validate=False)
    assert not written.validated and "not validated" in written.note
    manifest = slurm.read_manifest(root / "slurm" / "manifest.json")
    assert [(w["name"], w["pairs"]) for w in manifest["waves"]] == [
        ("train", ["00_baseline/baseline", "01_lr/low"]), ("reuse", ["01_lr/base"]), ("summary", ["01_lr/summary"])]
    assert manifest["code_version"] == registry.code_version() and manifest["llcm_root"] is None
    train = (root / "slurm" / "wave0_train.sbatch").read_text()
    assert "#SBATCH --array=0-1\n" in train and "#SBATCH --gres=gpu:1" in train and "#SBATCH --partition=gpu" in train
    assert "study exec --manifest" in train and '--wave 0 --index "$SLURM_ARRAY_TASK_ID"' in train
    assert f"export MACE_CODE_VERSION={manifest['code_version']}" in train
    assert written.tasks == {"wave0_train.sbatch": 2, "wave1_reuse.sbatch": 1, "wave2_summary.sbatch": 1,
                             "book.sbatch": 1}
    text = written.submit.read_text()
    order = [text.index(n) for n in ("study data --profile tiny", "wave0_train.sbatch", "wave1_reuse.sbatch",
                                     "wave2_summary.sbatch", "book.sbatch")]
    assert order == sorted(order) and text.count('dep="--dependency=afterany:$jid"') == 3
    assert f"--data-root {root / 'data'}" in text     # the dataset is prepared once, before any array
    assert f"--data-root {root / 'data'}" in (root / "slurm" / "book.sbatch").read_text()
    assert "--gres" not in (root / "slurm" / "book.sbatch").read_text()


def test_slurm_options_write_the_lines_clusters_need(tmp_path):
    root = make_study(tmp_path, {"00_baseline": {"baseline": "{}\n"}})
    opts = slurm.SlurmOptions(account="proj42", qos="long", gpus=0, cpus=4, mem="16G", constraint="skylake",
                              extra=("--mail-type=END", "#SBATCH --exclusive", "requeue"), max_tasks=3, time="2-00:00:00")
    written = slurm.write_slurm("tiny", root / "slurm", root / "params", root / "runs", root / "book",
                                root / "notebooks", options=opts, validate=False)
    train = (root / "slurm" / "wave0_train.sbatch").read_text()
    for line in ("--account=proj42", "--qos=long", "--cpus-per-task=4", "--mem=16G", "--constraint=skylake",
                 "--mail-type=END", "--exclusive", "--requeue", "--time=2-00:00:00", "--array=0-0%3"):
        assert f"#SBATCH {line}\n" in train, line
    assert "--gres" not in train and "--partition" not in train
    assert "export OMP_NUM_THREADS=4 MKL_NUM_THREADS=4" in train
    book_script = (root / "slurm" / "book.sbatch").read_text()
    assert "#SBATCH --account=proj42\n" in book_script and "--array" not in book_script
    assert written.submit.is_file()
    with pytest.raises(MaceError, match="--slurm-gpus -1"):
        slurm.SlurmOptions(gpus=-1)
    with pytest.raises(MaceError, match="not a Slurm time"):
        slurm.SlurmOptions(time="four hours")
    with pytest.raises(MaceError, match="not a Slurm memory size"):
        slurm.SlurmOptions(mem="lots")
    with pytest.raises(MaceError, match="not one #SBATCH option"):
        slurm.SlurmOptions(extra=("--a=1\n--b=2",))


def test_slurm_scripts_are_validated_before_submit_sh(tmp_path, monkeypatch, capsys):
    """A stand-in sbatch that rejects any script asking for a GPU: the error names the script and no
    submit.sh is left; accepted scripts get one; without sbatch the scripts are written unvalidated."""
    root = make_study(tmp_path, {"00_baseline": {"baseline": "{}\n"}})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(
        "#!/bin/sh\n[ \"$1\" = --test-only ] || exit 3\n"
        "if grep -q gres \"$2\"; then echo 'sbatch: error: Invalid generic resource (gres) specification' >&2; exit 1; fi\n"
        "echo 'sbatch: Job 1 to start at now' >&2\n")
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.chdir(root)
    cli = ["study", "run", "--profile", "tiny", "--slurm", "--slurm-dir", str(root / "slurm")]

    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert main(cli + ["--slurm-gpus", "0"]) == 0
    assert "checked with sbatch --test-only: accepted" in capsys.readouterr().out
    assert (root / "slurm" / "submit.sh").is_file()
    assert main(cli) == 2    # --slurm-gpus 1 by default: this "cluster" has no GPU
    err = capsys.readouterr().err
    assert "wave0_train.sbatch: sbatch: error: Invalid generic resource (gres) specification" in err
    assert not (root / "slurm" / "submit.sh").exists()    # never a submit script for rejected scripts

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no sbatch at all
    assert main(cli) == 0
    captured = capsys.readouterr()
    assert "not validated: sbatch is not installed" in captured.err and (root / "slurm" / "submit.sh").is_file()


def test_cli_rejects_unknown_profile_in_one_line(tmp_path, capsys, monkeypatch):
    root = make_study(tmp_path, {"00_x": {"a": "{}\n"}})
    monkeypatch.chdir(root)
    assert main(["study", "list", "--profile", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "profile 'nope' not found" in err


def test_write_toc_summary_first_and_missing_pages_left_out(tmp_path):
    b = tmp_path / "book"
    (b / "chapters").mkdir(parents=True)
    for page in ("intro.md", "methods.md", "architecture.md", "reproducibility.md", "chapters/01_y.md"):
        (b / page).write_text("# p\n")
    for nb in ("00_x/baseline", "01_y/a", "01_y/summary"):
        (b / "generated" / f"{nb}.ipynb").parent.mkdir(parents=True, exist_ok=True)
        (b / "generated" / f"{nb}.ipynb").write_text("{}")
    build.write_toc(b, {"01_y": ["a", "summary", "ghost"], "00_x": ["baseline"]})
    toc = yaml.safe_load((b / "_toc.yml").read_text())
    assert toc["root"] == "intro"
    assert toc["chapters"] == [
        {"file": "methods"},
        {"file": "architecture"},
        {"file": "generated/00_x/baseline"},                       # no chapter page: notebook heads it
        {"file": "chapters/01_y", "sections": [{"file": "generated/01_y/summary"}, {"file": "generated/01_y/a"}]},
        {"file": "reproducibility"}]


def test_parse_only_accepts_numbers_and_names():
    exps = ["00_baseline", "04_multi_query"]
    assert planning.parse_only("04, 00_baseline", exps) == exps
    assert planning.parse_only(None, exps) == exps


def test_cli_config_prints_a_config_that_mace_train_accepts(tmp_path, capsys):
    from mace_core.config import load_config

    assert main(["study", "config", "01_backbones", "efficientnet_b3", "--profile", "smoke",
                 "--params-dir", str(PARAMS)]) == 0
    out = tmp_path / "cfg.yaml"
    out.write_text(capsys.readouterr().out)
    cfg = load_config([out])
    assert cfg.model.backbone == "tinynet_e" and cfg.model.backbone_kwargs == {}
    assert registry.config_hash(cfg) == registry.config_hash(
        resolve("01_backbones", "efficientnet_b3", "smoke", PARAMS).config)
