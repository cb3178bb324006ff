"""Seed replicates: the training seed is part of the run key, each seed is cached on its own, the
runner trains every seed of every variant once, and the notebook API reads them back per seed."""
from __future__ import annotations

import pytest

from mace_core.errors import MaceError
from mace_core.study import api, registry, runner
from tests._study_helpers import FakeTrainer, in_process_execute, make_study

VARIANTS = {
    "00_baseline": {"baseline": "{}\n"},
    "01_lr": {"base": "train:\n  lr: 0.1\n", "low": "train:\n  lr: 0.01\n",
              "single": "train:\n  lr: 0.02\nstudy:\n  seeds: [0]\n"},
}
SUMMARY = '''# %% tags=["parameters"]
profile = "smoke"
params_dir = "params"
runs_dir = "runs"
'''


class SeedTrainer(FakeTrainer):
    """Records (variant, seed) and writes a seed-dependent Rank-1, so results differ per replicate."""

    def __call__(self, cfg, run_dir, resume):
        self.calls.append((cfg.name, cfg.train.seed))
        run_dir.mkdir(parents=True, exist_ok=True)
        registry.atomic_write_json(run_dir / registry.RESULTS, {"metrics": {"R1": 40.0 + cfg.train.seed}})
        return {}


@pytest.fixture()
def study(tmp_path, monkeypatch):
    root = make_study(tmp_path, VARIANTS)
    profile = root / "params" / "profiles" / "tiny.yaml"
    profile.write_text(profile.read_text() + "study:\n  seeds: [0, 1, 2]\n")
    (root / "notebooks" / "01_lr_summary.py").write_text(SUMMARY)
    trainer = SeedTrainer()
    monkeypatch.setattr(api, "_train", trainer)
    monkeypatch.chdir(root)
    return root, trainer


def _run(root, **kw):
    return runner.run_study("tiny", root / "params", root / "runs", root / "book", root / "notebooks",
                            build=False, prepare_data=False, progress=False, execute=in_process_execute, **kw)


def test_every_seed_is_its_own_run_and_trained_once(study):
    root, trainer = study
    report = _run(root)
    assert report.ok
    # baseline == 01_lr/base (lr 0.1 is the default): 3 seeds; low: 3 seeds; single: 1 seed
    assert sorted(trainer.calls) == sorted([("baseline", s) for s in (0, 1, 2)] + [("low", s) for s in (0, 1, 2)]
                                           + [("single", 0)])
    assert len(report.trained) == 4   # seeds 1 and 2 of baseline and of low; the pages trained seed 0
    keys = {api.run_dir_of("01_lr", "low", "tiny", seed=s).name for s in (0, 1, 2)}
    assert len(keys) == 3
    for seed in (0, 1, 2):
        cfg = registry.read_json(api.run_dir_of("01_lr", "low", "tiny", seed=seed) / registry.RECORD)
        assert cfg["seed"] == seed


def test_cached_seeds_are_reused_and_a_new_seed_trains_only_itself(study):
    root, trainer = study
    _run(root)
    n = len(trainer.calls)
    again = _run(root)
    assert len(trainer.calls) == n and again.trained == [] and again.executed == []
    profile = root / "params" / "profiles" / "tiny.yaml"
    profile.write_text(profile.read_text().replace("[0, 1, 2]", "[0, 1, 2, 3]"))
    third = _run(root)
    assert sorted(trainer.calls[n:]) == [("baseline", 3), ("low", 3)]
    # the summary reads every seed, so a new seed re-executes it; variant pages show seed 0 only
    assert [r["label"] for r in third.executed] == ["01_lr/summary"]


def test_load_results_returns_every_seed_in_order(study):
    root, _ = study
    _run(root)
    runs = api.load_results("01_lr", "tiny")
    assert [(r.variant, r.seed) for r in runs] == [("base", 0), ("base", 1), ("base", 2), ("low", 0), ("low", 1),
                                                  ("low", 2), ("single", 0)]
    assert [r.results["metrics"]["R1"] for r in runs if r.variant == "low"] == [40.0, 41.0, 42.0]
    assert api.seeds_of("01_lr", "single", "tiny") == [0]
    assert api.run_variant("01_lr", "low", "tiny").seed == 0   # None = the first seed


def test_a_seed_outside_the_list_is_refused(study):
    root, _ = study
    with pytest.raises(MaceError, match="seed 7 is not a training seed"):
        api.run_variant("01_lr", "low", "tiny", seed=7)


@pytest.mark.parametrize("bad", ["[0, 0]", "[]", "[-1]", "[a]", "1.5"])
def test_invalid_seed_lists_name_the_layers(study, bad):
    root, _ = study
    (root / "params" / "01_lr" / "low.yaml").write_text(f"study:\n  seeds: {bad}\n")
    with pytest.raises(MaceError, match="study.seeds must be a non-empty list") as err:
        api.seeds_of("01_lr", "low", "tiny")
    assert "low.yaml" in err.value.fix


def test_slurm_manifest_trains_every_seed_and_exec_runs_a_replicate(study):
    from mace_core.study import slurm

    root, trainer = study
    slurm.write_slurm("tiny", root / "slurm", root / "params", root / "runs", root / "book", root / "notebooks",
                      validate=False)
    manifest = slurm.read_manifest(root / "slurm" / "manifest.json")
    train = manifest["waves"][0]
    assert train["name"] == "train"
    assert {"00_baseline/baseline (seed 1)", "00_baseline/baseline (seed 2)", "01_lr/low (seed 2)"} <= set(train["pairs"])
    result = runner.execute_one("01_lr/low (seed 2)", "tiny", root / "params", root / "runs", root / "book",
                                root / "notebooks")
    assert result["ok"] and trainer.calls == [("low", 2)]
    assert registry.is_complete(api.run_dir_of("01_lr", "low", "tiny", seed=2))


def test_smoke_profile_trains_every_variant_with_eight_seeds_and_ci_with_two():
    """Issue 20: the smoke study trains every variant of every experiment with the same >= 5 training
    seeds (eight: what the training-time chapters need to detect 10 pp, methods page; seed s pairs the
    variants), the ci profile (which extends smoke) keeps two, so the tests stay fast."""
    from pathlib import Path

    from mace_core.study.variants import list_experiments, list_variants, resolve, seeds_of_variant

    params = Path(__file__).resolve().parents[1] / "params"
    for profile, expected in (("smoke", list(range(8))), ("ci", [0, 1])):
        for experiment in list_experiments(params):
            for variant in list_variants(experiment, params):
                seeds = seeds_of_variant(resolve(experiment, variant, profile, params))
                assert seeds == expected, (profile, experiment, variant, seeds)


def test_a_failed_slurm_task_is_listed_with_its_log_until_it_succeeds(study, monkeypatch, capsys):
    """`mace study exec` in an array task: a failing training leaves a record that `mace study list`
    shows (the error and the task's Slurm log); the task succeeding later clears it."""
    from mace_core.cli import main
    from mace_core.study import slurm

    root, trainer = study
    slurm.write_slurm("tiny", root / "slurm", root / "params", root / "runs", root / "book", root / "notebooks",
                      validate=False)
    index = slurm.read_manifest(root / "slurm" / "manifest.json")["waves"][0]["pairs"].index("01_lr/low (seed 2)")

    def broken(cfg, run_dir, resume):
        raise RuntimeError("boom: no such backbone")

    monkeypatch.setattr(api, "_train", broken)
    for key, value in {"SLURM_JOB_NAME": "mace-tiny-train", "SLURM_ARRAY_JOB_ID": "77",
                       "SLURM_ARRAY_TASK_ID": str(index)}.items():
        monkeypatch.setenv(key, value)
    task = ["study", "exec", "--manifest", str(root / "slurm" / "manifest.json"), "--wave", "0", "--index", str(index)]
    assert main(task) == 1
    assert "FAILED 01_lr/low (seed 2): RuntimeError: boom" in capsys.readouterr().err
    assert main(["study", "list", "--profile", "tiny"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "FAILED" in line]
    log = root / "slurm" / "logs" / f"mace-tiny-train-77_{index}.out"
    assert len(lines) == 1 and lines[0].startswith("01_lr/low (seed 2)")
    assert f"FAILED (Slurm log: {log}): RuntimeError: boom: no such backbone" in lines[0]

    monkeypatch.setattr(api, "_train", trainer)
    assert main(task) == 0
    capsys.readouterr()
    assert main(["study", "list", "--profile", "tiny"]) == 0
    assert "FAILED" not in capsys.readouterr().out
    assert not slurm.failure_path(root / "book", "01_lr/low (seed 2)").exists()
