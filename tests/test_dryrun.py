"""`mace study dry-run` and `mace bench --profile` on small release-shaped trees (tiny images)."""
from __future__ import annotations

import json
from collections import namedtuple

import pytest

from mace_core.cli import main
from mace_core.data import cache as cache_mod
from mace_core.data.synthetic_like import generate_regdb_like, generate_sysu_like
from mace_core.errors import MaceError
from mace_core.study.dryrun import paper_config
from mace_core.study.variants import resolve

# tiny images and no loader workers keep it fast; everything else is the paper config
TINY = ("data.height=32", "data.width=16", "data.workers=0")
STAGES = ["config", "ImageNet weights", "disk space and writability", "data check (every image decoded)",
          "image caches (32x16)", "train 2 steps + all-search evaluation", "checkpoint write",
          "steady-state steps (after 3 warm-up)", "evaluation indoor-search", "RegDB both directions"]


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("dry")
    # without structure.json: the release's camera totals, so this test runs without ../shared
    sysu = generate_sysu_like(base / "sysu", scale=0.02, size=(32, 16), workers=2)
    regdb = generate_regdb_like(base / "regdb", scale=0.03, size=(32, 16), workers=2)
    return sysu, regdb


def test_default_is_the_exact_paper_config(trees):
    cfg = paper_config("paper", trees[0], steps=3)
    study = resolve("00_baseline", "baseline", "paper").config
    assert (cfg.model, cfg.loss, cfg.eval) == (study.model, study.loss, study.eval)
    assert (cfg.data.height, cfg.data.width, cfg.data.workers) == (288, 144, study.data.workers)
    assert cfg.model.backbone == "resnet50" and cfg.model.last_stride1 and cfg.train.amp == "auto"
    assert (cfg.train.epochs, cfg.train.steps_per_epoch, cfg.train.eval_every) == (1, 3, 0)
    assert cfg.data.root == str(trees[0])
    with pytest.raises(MaceError, match="--steps"):
        paper_config("paper", trees[0], steps=0)


def test_dry_run_writes_every_stage(trees, tmp_path, capsys):
    out = tmp_path / "report.json"
    code = main(["study", "dry-run", "--data-root", str(trees[0]), "--regdb-root", str(trees[1]), "--steps", "2",
                 "--json", str(out), "--work-dir", str(tmp_path / "run"), *sum((["--set", s] for s in TINY), [])])
    printed = capsys.readouterr().out
    assert code == 0
    report = json.loads(out.read_text())
    assert [r["stage"] for r in report["stages"]] == STAGES
    for row in report["stages"]:
        assert row["wall_s"] >= 0 and row["peak_rss_mb"] > 0 and row["stage"] in printed
    rows = {r["stage"]: r for r in report["stages"]}
    assert rows["image caches (32x16)"]["cache_on_disk_mb"] > 0
    train = rows["train 2 steps + all-search evaluation"]
    assert train["images_per_s"] > 0 and rows["checkpoint write"]["checkpoint_mb"] > 0
    steady = rows["steady-state steps (after 3 warm-up)"]
    assert steady["step_time_s"] > 0 and "2 timed steps after 3 warm-up steps" in steady["note"]
    p = report["projection"]
    assert p["epochs"] == 60 and p["full_run_steps"] == 60 * p["steps_per_epoch"] > 0
    # paper profile: evaluation every 5 epochs, a checkpoint every 15 (both also after the last)
    assert (p["evaluations"], p["checkpoints"], p["checkpoint_every"]) == (12, 4, 15)
    assert p["train_s"] == pytest.approx(p["full_run_steps"] * p["step_time_s"])
    assert p["total_s"] == pytest.approx(p["one_time_s"] + p["train_s"] + 12 * p["eval_time_s"]
                                         + 4 * p["checkpoint_write_s"])
    assert "| checkpoint writes (every 15 epochs + last) | 4 |" in printed and "| total |" in printed
    assert report["all_search"]["trials"] == 10 and report["all_search"]["queries"] > 0
    assert set(report["regdb"]) == {"v2t", "t2v"}
    assert report["exact_paper_config"] is False and "data.height=32" in printed
    # the whole study's GPU hours at 1, 3 and 5 training seeds (the seed count is a budget choice)
    study = report["study"]
    assert list(study["hours"]) == ["1", "3", "5"] and "| projected GPU hours |" in printed
    per_seed = study["runs_per_seed"] * p["total_s"] + study["evaluations_per_seed"] * p["eval_time_s"]
    assert study["hours"]["5"] == pytest.approx(round(5 * per_seed / 3600, 1))
    if report["pretrained"] == "none":   # offline: said in the JSON and in the table
        assert "RANDOM INIT" in report["weights_note"] and "RANDOM INIT" in printed
    assert (tmp_path / "run" / "results.json").is_file()


def test_full_disk_stops_before_any_long_work(trees, tmp_path, monkeypatch, capsys):
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(cache_mod.shutil, "disk_usage", lambda p: Usage(10**9, 10**9 - 10**6, 10**6))
    cache = tmp_path / "cache"
    code = main(["study", "dry-run", "--data-root", str(trees[0]), "--steps", "1", "--work-dir", str(tmp_path / "run"),
                 "--json", str(tmp_path / "r.json"), "--set", f"data.cache_dir={cache}", *sum((["--set", s] for s in TINY), [])])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "GB are free" in err and "data.cache_dir" in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "r.json").exists()
    assert [p.name for p in cache.iterdir()] == []


def test_bench_profile_paper_on_cpu(trees, capsys):
    code = main(["bench", "--profile", "paper", "--data-root", str(trees[0]), "--steps", "1", "--warmup", "0",
                 *sum((["--set", s] for s in TINY), [])])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(r["amp"], r["channels_last"]) for r in report["training"]] == [("off", True), ("off", False)]  # CPU: auto = off
    assert all(r["images_per_s"] > 0 and r["step_time_ms_mean"] > 0 for r in report["training"])
    assert report["eval_trials"] == 10 and report["eval_queries"] > 0 and report["eval_s"] > 0
    assert report["backbone"] == "resnet50" and report["input"] == "32x16"
    # the three parts, the bottleneck, and both determinism modes (the profile's is deterministic)
    assert report["input_pipeline"]["batches_per_s"] > 0 and report["together"]["steps"] >= 1
    assert report["bottleneck"] in ("input pipeline", "model step") and report["workers_to_keep_up"] >= 1
    d = report["determinism"]
    assert d["deterministic_step_ms"] == report["model_step"]["step_time_ms_mean"] and d["fast_step_ms"] > 0
    assert d["deterministic_over_fast"] == pytest.approx(d["deterministic_step_ms"] / d["fast_step_ms"])


def test_bench_needs_params_or_profile(capsys):
    assert main(["bench"]) == 2
    assert "--profile" in capsys.readouterr().err


EVAL, WRITE = 4.0, 1.5  # fake seconds (START, FIRST, STEP: test_bench)


def test_projection_ignores_slow_start_up_and_first_step(trees, tmp_path, monkeypatch):
    """A fake clock moved only by injected costs: a slow start-up and first step (in the trainer and in
    the steady-state timing), fixed later steps, evaluation and checkpoint write. The projection
    counts the start-up and first step once, as one-time costs, and every other part exactly."""
    from test_bench import FIRST, START, STEP, inject

    from mace_core.engine import bench as bench_mod
    from mace_core.engine import checkpoint as ck
    from mace_core.engine import train as train_mod
    from mace_core.study import dryrun

    clock = inject(monkeypatch, (train_mod, bench_mod))   # slow start-up and first step, STEP after
    monkeypatch.setattr(dryrun, "time", clock)
    evaluate, save = train_mod.evaluate, ck.save_checkpoint

    def timed_eval(*args, **kwargs):
        clock.now += EVAL
        return evaluate(*args, **kwargs)

    def timed_save(*args, **kwargs):
        clock.now += WRITE
        return save(*args, **kwargs)

    monkeypatch.setattr(train_mod, "evaluate", timed_eval)
    monkeypatch.setattr(ck, "save_checkpoint", timed_save)

    report = dryrun.dry_run(trees[0], steps=1, warmup=2, overrides=TINY, work_dir=tmp_path / "run",
                            quick_check=True, progress=False)
    p = report["projection"]
    assert (p["step_time_s"], p["eval_time_s"], p["checkpoint_write_s"]) == (STEP, EVAL, WRITE)
    # the trainer's 1 step was its slow first one: all of it beyond one steady step is one-time
    assert p["one_time_s"] == pytest.approx(START + FIRST - STEP)
    assert p["total_s"] == pytest.approx(START + FIRST - STEP + p["full_run_steps"] * STEP + 12 * EVAL + 4 * WRITE)


def test_whole_study_projection_by_hand_and_counted_from_the_plan():
    from mace_core.study import dryrun, runner

    # 15 runs of 1 h and 30 evaluations of 2 min per seed: 16 h per seed
    p = dryrun.study_projection(3600.0, 120.0, {"runs_per_seed": 15, "evaluations_per_seed": 30})
    assert p["hours"] == {1: 16.0, 3: 48.0, 5: 80.0}
    counts = dryrun.study_counts("paper")
    # one training run per distinct config: the plan's first-seed run keys
    assert counts["runs_per_seed"] == len({pair.run_key for pair in runner.plan("paper") if pair.run_key})
    assert counts["evaluations_per_seed"] > 0
