"""The study runner: caching, failure isolation, atomic outputs, real papermill execution."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from mace_core.errors import MaceError
from mace_core.study import api, execution, planning, pool, runner
from tests._study_helpers import FakeTrainer, in_process_execute, make_study

VARIANTS = {
    "00_baseline": {"baseline": "{}\n"},
    "01_lr": {"base": "train:\n  lr: 0.1\n", "low": "train:\n  lr: 0.01\n", "high": "train:\n  lr: 0.5\n"},
}


@pytest.fixture()
def study(tmp_path, monkeypatch):
    root = make_study(tmp_path, VARIANTS)
    trainer = FakeTrainer()
    monkeypatch.setattr(api, "_train", trainer)
    monkeypatch.chdir(root)
    return root, trainer


def _run(root: Path, **kw):
    kw.setdefault("execute", in_process_execute)
    return runner.run_study("tiny", root / "params", root / "runs", root / "book", root / "notebooks",
                            build=False, prepare_data=False, progress=False, **kw)


def test_second_run_executes_nothing_and_shared_runs_train_once(study):
    root, trainer = study
    first = _run(root)
    assert first.ok and len(first.executed) == 4 and first.skipped == []
    # 00_baseline/baseline and 01_lr/base resolve to the same training config (lr 0.1 is the default)
    assert len(trainer.calls) == 3
    assert sorted(p.name for p in (root / "runs" / "tiny").iterdir() if not p.name.startswith(".")).__len__() == 3
    second = _run(root)
    assert second.executed == [] and len(second.skipped) == 4
    assert len(trainer.calls) == 3


def test_changing_one_variant_reruns_only_it(study):
    root, trainer = study
    _run(root)
    (root / "params" / "01_lr" / "low.yaml").write_text("train:\n  lr: 0.02\n")
    again = _run(root)
    assert [r["label"] for r in again.executed] == ["01_lr/low"]
    assert trainer.calls[-1] == "01_lr/low" and len(trainer.calls) == 4


def test_notebook_change_reexecutes_without_retraining(study):
    root, trainer = study
    _run(root)
    nb = root / "notebooks" / "00_baseline.py"
    nb.write_text(nb.read_text() + "\n# %%\nprint('more')\n")
    again = _run(root)
    assert [r["label"] for r in again.executed] == ["00_baseline/baseline"]
    assert len(trainer.calls) == 3


def test_failure_is_isolated_and_reported(study, monkeypatch):
    root, _ = study
    trainer = FakeTrainer(fail_for={"low"})
    monkeypatch.setattr(api, "_train", trainer)
    report = _run(root)
    assert not report.ok
    assert [f["label"] for f in report.failed] == ["01_lr/low"]
    assert "boom in low" in report.failed[0]["error"]
    assert {r["label"] for r in report.executed} == {"00_baseline/baseline", "01_lr/base", "01_lr/high"}
    # the next run retries only the failed pair
    monkeypatch.setattr(api, "_train", FakeTrainer())
    again = _run(root)
    assert [r["label"] for r in again.executed] == ["01_lr/low"] and again.ok


def test_interrupted_notebook_is_never_taken_as_done(study):
    root, _ = study

    def crash_after_partial_write(job):
        Path(job["tmp"]).write_text("{half a notebook")
        raise RuntimeError("kernel died")

    report = _run(root, only="00", execute=crash_after_partial_write)
    out = root / "book" / "generated" / "00_baseline" / "baseline.ipynb"
    assert not out.exists() and not report.ok
    # the partial file is kept for inspection under the .failed name, never at the final path
    assert Path(report.failed[0]["notebook"]).name == "baseline.failed.ipynb"
    again = _run(root, only="00")
    assert [r["label"] for r in again.executed] == ["00_baseline/baseline"]
    assert out.is_file() and not (out.parent / "baseline.failed.ipynb").exists()


def test_partial_run_is_resumed_not_restarted(study, monkeypatch):
    root, _ = study
    run_dir = api.run_dir_of("00_baseline", "baseline", "tiny", root / "params", root / "runs")
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"x")
    (run_dir / "config.yaml").write_text("name: first\nexperiment: 09_other\n")
    seen = {}

    def fake(cfg, rd, resume):
        seen.update(resume=resume, name=cfg.name, experiment=cfg.experiment)
        FakeTrainer()(cfg, rd, resume)

    monkeypatch.setattr(api, "_train", fake)
    res = api.run_variant("00_baseline", "baseline", "tiny", root / "params", root / "runs")
    assert seen == {"resume": True, "name": "first", "experiment": "09_other"}
    assert res.results["metrics"]["R1"] == 42.0 and list(res.log.columns) == ["epoch", "loss"]
    assert res.record["used_by"] == ["00_baseline/baseline"] and res.record["resumed"] is True


def test_force_retrains(study):
    root, trainer = study
    _run(root, only="00")
    again = _run(root, only="00", force=True)
    assert len(again.executed) == 1 and trainer.calls == ["00_baseline/baseline"] * 2


def test_only_selects_and_rejects_unknown(study):
    root, _ = study
    assert [p.label for p in planning.plan("tiny", root / "params", "runs", "book", "notebooks", "01")] == \
        ["01_lr/base", "01_lr/high", "01_lr/low"]
    with pytest.raises(MaceError, match="--only '07'"):
        planning.plan("tiny", root / "params", "runs", "book", "notebooks", "07")


def test_waves_order_training_before_reuse_before_summaries(study):
    root, _ = study
    (root / "notebooks" / "01_lr_summary.py").write_text("# %%\nx = 1\n")
    pairs = planning.plan("tiny", root / "params", root / "runs", root / "book", root / "notebooks")
    named = planning.waves(pairs)
    assert [n for n, _ in named] == ["train", "reuse", "summary"]
    assert [p.label for p in named[1][1]] == ["01_lr/base"]          # shares 00_baseline's run
    assert [p.label for p in named[2][1]] == ["01_lr/summary"]


def test_real_papermill_execution_and_failed_notebook_path(tmp_path, monkeypatch):
    """End to end through papermill and the study kernel: parameters injected, failure kept aside."""
    root = make_study(tmp_path, {"00_baseline": {"baseline": "{}\n", "bad": "{}\n"}})
    nb = root / "notebooks" / "00_baseline.py"
    nb.write_text(nb.read_text() + "\n# %%\nif variant == 'bad':\n    raise ValueError('bad variant')\n")
    monkeypatch.chdir(root)
    report = runner.run_study("tiny", root / "params", root / "runs", root / "book", root / "notebooks",
                              build=False, prepare_data=False, progress=False, jobs=2)
    assert [r["label"] for r in report.executed] == ["00_baseline/baseline"]
    assert [f["label"] for f in report.failed] == ["00_baseline/bad"]
    failed = Path(report.failed[0]["notebook"])
    assert failed.name == "bad.failed.ipynb" and "bad variant" in failed.read_text()
    done = nbformat.read(root / "book" / "generated" / "00_baseline" / "baseline.ipynb", as_version=4)
    outputs = "".join(o.get("text", "") for c in done.cells for o in c.get("outputs", []))
    assert '"variant": "baseline", "profile": "tiny"' in outputs
    injected = [c for c in done.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "remove-cell" in injected[0].metadata["tags"]   # hidden in the book
    # the kernel gets project-relative folders: no absolute path of this machine reaches the book
    assert 'params_dir = "params"' in injected[0].source and str(tmp_path) not in injected[0].source


def test_variant_is_named_in_the_page_title():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_markdown_cell("# Backbone run\n\nText.")])
    execution.title_with_variant(nb, "seresnet50")
    assert nb.cells[1].source == "# Backbone run: seresnet50\n\nText."
    plain = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("Intro without a heading")])
    execution.title_with_variant(plain, "x")
    assert plain.cells[0].source == "Intro without a heading"


def test_cpu_jobs_share_the_threads(monkeypatch):
    monkeypatch.setattr(pool.os, "cpu_count", lambda: 8)
    env = pool.job_env(4, {"JUPYTER_PATH": "k"})
    assert env == {"JUPYTER_PATH": "k", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    assert pool.job_env(1, {"A": "b"}) == {"A": "b"}  # one job: torch's own default
    assert "CUDA_VISIBLE_DEVICES" not in pool.job_env(2, {})  # GPUs go per worker, not per job


def test_each_pool_worker_keeps_its_own_gpu(monkeypatch):
    from multiprocessing import get_context

    counter = get_context("spawn").Value("i", 0)
    seen = []
    for _ in range(3):  # three workers claiming in turn on two GPUs
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # each spawned worker inherits the parent's list
        pool._claim_gpu(counter, ["0", "1"])
        seen.append(pool.os.environ["CUDA_VISIBLE_DEVICES"])
    assert seen == ["0", "1", "0"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    pool._claim_gpu(counter, [])  # CPU only: nothing to pin
    assert "CUDA_VISIBLE_DEVICES" not in pool.os.environ


def test_workers_get_the_gpus_the_parent_was_given(monkeypatch):
    import torch
    from multiprocessing import get_context

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # what torch sees *through* the parent's list
    # Slurm gave the study physical GPUs 2 and 3: the workers get "2" and "3", never "0" and "1"
    gpus = pool._gpu_list({"CUDA_VISIBLE_DEVICES": "2, 3"})
    assert gpus == ["2", "3"]
    counter = get_context("spawn").Value("i", 0)
    seen = []
    for _ in range(4):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
        pool._claim_gpu(counter, gpus)
        seen.append(pool.os.environ["CUDA_VISIBLE_DEVICES"])
    assert seen == ["2", "3", "2", "3"]
    uuids = "GPU-8f2a,GPU-77c1,GPU-0b3e"  # entries are passed on verbatim (UUIDs, MIG names)
    assert pool._gpu_list({"CUDA_VISIBLE_DEVICES": uuids}) == uuids.split(",")
    assert pool._gpu_list({"CUDA_VISIBLE_DEVICES": ""}) == []  # set but empty: no GPU for anyone
    assert pool._gpu_list({}) == ["0", "1"]  # unset: every device torch sees
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert pool._gpu_list({}) == []


def test_more_jobs_than_gpus_warns_how_many_share_each():
    """Issue 22, point 8: worker k keeps GPU k mod G; the warning counts the jobs per GPU."""
    assert pool.gpu_sharing(5, ["0", "1"]) == (
        "--jobs 5 with 2 visible GPUs: jobs share GPUs (GPU 0: 3 jobs, GPU 1: 2 jobs), each job with a share of "
        "its GPU's memory and time; use --jobs 2 for one job per GPU")
    assert pool.gpu_sharing(2, ["0", "1"]) is None and pool.gpu_sharing(4, []) is None
    assert pool.gpu_sharing(1, ["0"]) is None and "GPU 3: 2 jobs" in pool.gpu_sharing(2, ["3"])


def test_study_warns_when_jobs_share_a_gpu(tmp_path, monkeypatch):
    root = make_study(tmp_path, {"00_baseline": {"baseline": "{}\n"}})
    monkeypatch.setattr(api, "_train", FakeTrainer())
    monkeypatch.chdir(root)
    monkeypatch.setattr(runner, "_gpu_list", lambda: ["0"])
    with pytest.warns(UserWarning, match=r"--jobs 3 with 1 visible GPU: jobs share GPUs \(GPU 0: 3 jobs\)"):
        _run(root, jobs=3)


def test_image_caches_are_built_once_per_data_setting_before_the_jobs(tmp_path, monkeypatch):
    """Issue 22, point 8: the study builds each distinct data setting's caches once, before its
    worker pool, not once per job (three variants, two data settings: two builds)."""
    from mace_core.data import datasets
    from mace_core.data.synthetic import generate
    from mace_core.study.variants import DATA_ROOT_ENV

    data = generate(tmp_path / "data", ids=12, images_per_cam=2, seed=0, size=(32, 16))
    root = make_study(tmp_path / "study", {"00_baseline": {
        "baseline": "data:\n  height: 32\n  width: 16\n",
        "lr": "data:\n  height: 32\n  width: 16\ntrain:\n  lr: 0.01\n",
        "half": "data:\n  height: 32\n  width: 16\n  id_fraction: 0.5\n"}})
    monkeypatch.setenv(DATA_ROOT_ENV, str(data))
    monkeypatch.setattr(api, "_train", FakeTrainer())
    monkeypatch.chdir(root)
    order, real = [], datasets.build_caches
    monkeypatch.setattr(datasets, "build_caches", lambda d: order.append(("build", d.id_fraction)) or real(d))
    monkeypatch.setattr(runner, "_run_jobs", lambda jobs_now, jobs, execute: [
        order.append(("job", j["label"])) or execute_job_ok(j) for j in jobs_now])
    _run(root, jobs=2)
    builds = [o for o in order if o[0] == "build"]
    assert sorted(builds) == [("build", 0.5), ("build", 1.0)]
    assert order.index(builds[-1]) < min(i for i, o in enumerate(order) if o[0] == "job")
    assert (data / ".mace_cache").is_dir() and any((data / ".mace_cache").iterdir())


def execute_job_ok(job):
    return {"label": job["label"], "ok": True, "seconds": 0.0, "notebook": None, "kind": job.get("kind")}
