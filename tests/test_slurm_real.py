"""The study's Slurm arrays on a real one-node Slurm (issue 23): slurmctld and slurmd on localhost,
started by ``.ci/slurm-up`` (``.ci/run`` starts it; the tests start it themselves when run as root).

Kept cheap: the ci profile restricted to experiment 00 (one variant, two training seeds, a summary),
tasks of one CPU, on the session's ci dataset; the local runner's reference is the session's ci study
(tests/conftest.py: same profile, dataset and code, so the same run keys), trained once for all tests.

- End to end: ``mace study run --slurm`` writes the arrays, ``bash submit.sh`` submits them; the
  first submission runs one task at a time and is ``scancel``-ed once the first pair is done, the
  re-submission's arrays hold only the missing pair, and when its book job has ended the book is
  built and every run's key and metrics are bit-identical to the local runner's (CPU).
- Faults: a variant with an invalid backbone fails while the other tasks complete, and
  ``mace study list`` names it with its Slurm log; a task killed at its time limit (1 minute)
  resumes from its checkpoint when re-submitted (the resumed task is stopped after its first new epoch).
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from mace_core.cli import main
from mace_core.study import planning, registry
from mace_core.study.slurm import pinned_env
from mace_core.study.variants import DATA_ROOT_ENV

REPO = Path(__file__).resolve().parents[1]
# one worker under xdist (the module's Slurm study is shared); the session's ci study is the reference
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.xdist_group("slurm")]
TIMING = re.compile(r"(time|timing|_s$|per_s|seconds)")   # wall-clock fields: the only ones allowed to differ


def _slurm_reason() -> str | None:
    """None when a Slurm node is idle (starting it with .ci/slurm-up where we may); else why not."""
    def up() -> bool:
        try:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return out.returncode == 0 and any(s in out.stdout for s in ("idle", "mixed", "allocated"))

    if shutil.which("sbatch") and up():
        return None
    if os.geteuid() != 0:
        return "no Slurm running, and not root: start one with `sudo .ci/slurm-up`"
    proc = subprocess.run([str(REPO / ".ci" / "slurm-up"), "--no-install"], capture_output=True, text=True, timeout=180)
    if proc.returncode == 0 and up():
        return None
    why = {2: "not root", 3: "no packages (slurm-wlm, munge)"}.get(proc.returncode, "it did not start")
    return f".ci/slurm-up could not start a local Slurm: {why}: {proc.stderr.strip()[-300:]}"


@pytest.fixture(scope="module")
def slurm():
    reason = _slurm_reason()
    if reason:
        pytest.skip(reason)


def _squeue_ids() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%F"], capture_output=True, text=True, timeout=30).stdout
    return set(out.split())


def _wait(jobs: list[str], timeout: float = 600.0) -> None:
    """Until none of the jobs (array job ids) is queued or running."""
    deadline = time.monotonic() + timeout
    while set(jobs) & _squeue_ids():
        if time.monotonic() > deadline:
            subprocess.run(["scancel", *jobs])
            pytest.fail(f"Slurm jobs {jobs} did not end within {timeout:.0f} s")
        time.sleep(0.25)   # the next step starts as soon as the jobs are gone (a squeue call is cheap)


def _states(job: str) -> list[str]:
    """JobState of every task of an (ended) array job, from slurmctld's memory (MinJobAge)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True, timeout=30).stdout
    return re.findall(r"JobState=(\S+)", out)


def _submit(submit: Path) -> dict[str, str]:
    """``bash submit.sh``: script name -> job id (its output lines 'wave0_train.sbatch: 12 (2 tasks)')."""
    proc = subprocess.run(["bash", str(submit)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return {m[1]: m[2] for m in re.finditer(r"^(\S+\.sbatch): (\d+)", proc.stdout, re.M)}


class Project:
    """A copy of params/ and book/ (notebooks from the repository), its own runs/, a shared dataset."""

    def __init__(self, root: Path, data: Path):
        self.root, self.data = root, data
        shutil.copytree(REPO / "params", root / "params")
        shutil.copytree(REPO / "book", root / "book", ignore=shutil.ignore_patterns("_build", "generated", "_toc.yml"))
        self.params, self.runs, self.book = root / "params", root / "runs", root / "book"
        self.slurm_dir = self.runs / "ci" / "slurm"

    def args(self, *extra: str) -> list[str]:
        return ["--profile", "ci", "--only", "00", "--params-dir", str(self.params), "--runs-dir", str(self.runs),
                "--book-dir", str(self.book), "--notebooks-dir", str(REPO / "notebooks"), "--data-root", str(self.data),
                *extra]

    def write(self, *options: str) -> dict[str, int]:
        """``mace study run --slurm`` (CPU tasks of one core): wave -> array tasks."""
        out = io.StringIO()
        with redirect_stdout(out):
            code = main(["study", "run", *self.args("--slurm", "--slurm-gpus", "0", "--slurm-cpus", "1", *options)])
        assert code == 0 and "checked with sbatch --test-only: accepted" in out.getvalue(), out.getvalue()
        return {w: len(m) for w, m in zip(*self._waves())}

    def _waves(self):
        manifest = json.loads((self.slurm_dir / "manifest.json").read_text())
        return [f"wave{k}_{w['name']}" for k, w in enumerate(manifest["waves"])], [w["pairs"] for w in manifest["waves"]]

    def labels(self) -> dict[str, list[str]]:
        names, pairs = self._waves()
        return dict(zip(names, pairs))


def _pair(p: Project, label: str) -> planning.Pair:
    """A planned pair of the project, with its run directory for the project's dataset (data.root is
    part of the run key)."""
    with pinned_env({DATA_ROOT_ENV: str(p.data)}):
        return next(x for x in planning.plan("ci", p.params, p.runs, p.book, REPO / "notebooks", "00") if x.label == label)


def _results(runs: Path) -> dict[str, dict]:
    """run key -> results.json without its wall-clock fields."""
    out = {}
    for path in sorted((runs / "ci").glob(f"*/{registry.RESULTS}")):
        data = json.loads(path.read_text())
        out[path.parent.name] = {k: v for k, v in data.items() if not TIMING.search(k)}
    return out


@pytest.fixture(scope="module")
def on_slurm(slurm, ci_data, request, tmp_path_factory):
    """The ci study (experiment 00) on Slurm: submitted one task at a time, scancel-ed after its first pair,
    re-submitted, run to the end of its book job. The local runner's reference is the session's ci study
    (same profile, dataset and code): its runs of experiment 00. It is asked for first: its pretrained
    backbone (study/pretrain.py, beside the shared dataset) is then in place, so the arrays train only the
    two seeds. Returns what the tests check."""
    study = request.getfixturevalue("ci_study")   # under xdist: built by (or waited for on) the other worker
    data = ci_data   # the session's ci dataset (data.root is part of a run key: the study's keys)
    p = Project(tmp_path_factory.mktemp("slurm-study"), data)
    facts: dict = {"project": p, "first_tasks": p.write("--slurm-time", "10", "--slurm-max-tasks", "1")}
    facts["first_labels"] = p.labels()
    first = _submit(p.slurm_dir / "submit.sh")
    baseline = _pair(p, "00_baseline/baseline")
    deadline = time.monotonic() + 600
    while not baseline.stamp_path.is_file():   # the first task's notebook is in place: cancel mid-array
        assert time.monotonic() < deadline, "the first array task did not finish"
        time.sleep(0.3)
    subprocess.run(["scancel", *first.values()], check=True)
    _wait(list(first.values()), 120)
    facts["cancelled_states"] = _states(first["wave0_train.sbatch"])
    facts["done_at_cancel"] = sorted(_results(p.runs))
    facts["baseline_record"] = json.loads((baseline.run_dir / registry.RECORD).read_text())

    facts["second_tasks"] = p.write("--slurm-time", "10")
    facts["second_labels"] = p.labels()
    second = _submit(p.slurm_dir / "submit.sh")
    _wait(list(second.values()), 600)
    facts["second_jobs"] = second

    # the reference: the local runner's runs of experiment 00 (every training seed's planned key) in the
    # session's ci study; only its trained runs are compared (its pages do not matter here)
    with pinned_env({DATA_ROOT_ENV: str(data)}):
        pairs = planning.plan("ci", REPO / "params", study.runs, study.book, REPO / "notebooks", "00")
    keys = {k for x in pairs if not x.is_summary for k in (x.run_key, *(r.run_key for r in x.replicates))}
    facts["reference"] = {k: v for k, v in _results(study.runs).items() if k in keys}
    facts["reference_log"] = "\n".join(f"{f['label']}: {f['error']}" for f in study.report.failed)
    return facts


def test_slurm_study_matches_the_local_runner_and_builds_the_book(on_slurm):
    p = on_slurm["project"]
    assert (p.book / "_build" / "html" / "index.html").is_file()
    logs = sorted(p.slurm_dir.glob("logs/mace-ci-book-*.out"))
    assert logs and "book:" in logs[-1].read_text()
    html = p.book / "_build" / "html" / "generated" / "00_baseline"
    assert (html / "baseline.html").is_file() and (html / "summary.html").is_file()
    # same run keys, bit-identical metrics (the baseline's two training seeds)
    assert len(on_slurm["reference"]) == 2, on_slurm["reference_log"][-3000:]
    assert _results(p.runs) == on_slurm["reference"]


def test_scancel_then_resubmission_runs_only_the_missing_pairs(on_slurm):
    assert on_slurm["first_tasks"] == {"wave0_train": 2, "wave1_summary": 1}
    assert on_slurm["first_labels"]["wave0_train"] == ["00_baseline/baseline", "00_baseline/baseline (seed 1)"]
    # the first task may end on its own or be cancelled while it exits; the second is cancelled
    assert "CANCELLED" in on_slurm["cancelled_states"]
    assert set(on_slurm["cancelled_states"]) <= {"CANCELLED", "COMPLETED"}
    assert len(on_slurm["done_at_cancel"]) == 1
    # the re-submission: one training task (the seed that was cancelled), the summary, the book
    assert on_slurm["second_tasks"] == {"wave0_train": 1, "wave1_summary": 1}
    assert on_slurm["second_labels"]["wave0_train"] == ["00_baseline/baseline (seed 1)"]
    assert all(s == "COMPLETED" for s in _states(on_slurm["second_jobs"]["wave0_train.sbatch"]))
    p = on_slurm["project"]
    baseline_key = on_slurm["done_at_cancel"][0]
    record = json.loads((p.runs / "ci" / baseline_key / registry.RECORD).read_text())
    assert record["trained_at"] == on_slurm["baseline_record"]["trained_at"]   # not trained again


BAD = "# an invalid value: no such backbone (fails when the task trains)\nmodel:\n  backbone: no_such_net\nstudy:\n  seeds: [0]\n"
LONG = ("# far more epochs than one minute allows: killed at its time limit, resumed from last.pt\n"
        "train:\n  epochs: 5000\n  checkpoint_every: 1\n  eval_every: 0\nstudy:\n  seeds: [0]\n")


def test_failed_task_and_time_limit_on_slurm(on_slurm, capsys):
    p = on_slurm["project"]
    (p.params / "00_baseline" / "bad.yaml").write_text(BAD)
    (p.params / "00_baseline" / "long.yaml").write_text(LONG)
    tasks = p.write("--slurm-time", "10")
    assert p.labels()["wave0_train"] == ["00_baseline/bad", "00_baseline/long"] and tasks["wave0_train"] == 2
    jobs = _submit(p.slurm_dir / "submit.sh")
    # the long task's time limit: 1 minute, Slurm's smallest (the failing one keeps 10, so that a slow start
    # on a busy machine cannot turn its failure into a timeout)
    subprocess.run(["scontrol", "update", f"JobId={jobs['wave0_train.sbatch']}_1", "TimeLimit=1"], check=True)
    _wait(list(jobs.values()), 400)
    states = _states(jobs["wave0_train.sbatch"])
    assert sorted(states) == ["FAILED", "TIMEOUT"], states
    # the other tasks completed: the summary (up to date) and the book (rebuilt)
    assert all(s == "COMPLETED" for j in ("wave1_summary.sbatch", "book.sbatch") for s in _states(jobs[j]))
    assert "book:" in (p.slurm_dir / "logs" / f"mace-ci-book-{jobs['book.sbatch']}.out").read_text()

    # `mace study list` names the failed pair and its Slurm log
    capsys.readouterr()
    assert main(["study", "list", *p.args()]) == 0
    listing = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    bad_line = listing["00_baseline/bad"]
    log = p.slurm_dir / "logs" / f"mace-ci-train-{jobs['wave0_train.sbatch']}_0.out"
    assert "FAILED" in bad_line and str(log) in bad_line and "no_such_net" in bad_line
    assert log.is_file() and "no_such_net" in log.read_text()
    assert "FAILED" not in listing["00_baseline/long"] and "to run" in listing["00_baseline/long"]

    # the task killed at its time limit left checkpoints: re-submitted, it resumes from the last one
    long_pair = _pair(p, "00_baseline/long")
    assert (long_pair.run_dir / "checkpoints" / "last.pt").is_file()
    first_rows = (long_pair.run_dir / "log.csv").read_text().splitlines()
    assert len(first_rows) > 3
    p.write("--slurm-time", "10")
    assert p.labels()["wave0_train"] == ["00_baseline/bad", "00_baseline/long"]
    jobs = _submit(p.slurm_dir / "submit.sh")
    try:   # until the resumed run has logged an epoch beyond the first attempt's (then it is stopped)
        deadline = time.monotonic() + 300
        while len((long_pair.run_dir / "log.csv").read_text().splitlines()) <= len(first_rows):
            assert time.monotonic() < deadline, "the re-submitted task did not log a further epoch"
            assert jobs["wave0_train.sbatch"] in _squeue_ids(), "the re-submitted task ended early"
            time.sleep(0.5)
    finally:
        subprocess.run(["scancel", *jobs.values()])
        _wait(list(jobs.values()), 60)
    rows = (long_pair.run_dir / "log.csv").read_text().splitlines()
    # kept, not recomputed: the first attempt's checkpointed epochs keep their wall-clock columns byte for
    # byte (its last row may postdate the last checkpoint, then resume repeats that epoch)
    kept = first_rows[:-1]
    assert rows[:len(kept)] == kept and len(rows) > len(first_rows)
