"""An interrupted study never breaks the next one (issue 9, point 6).

`mace study run` on the ci profile, as a process group of its own, is stopped with SIGTERM or SIGKILL
in the middle of a notebook (a cell that waits while a hold file exists) or in the middle of a
training (a checkpoint written, no results yet). Afterwards nothing of the study runs any more; after
SIGTERM no temp notebook is left, after SIGKILL the next study removes it. That next study executes
only the unfinished notebook (resuming the interrupted training), and ends with the same metrics and
the same notebook outputs as an uninterrupted study. Also: the book never reads a temp notebook, and
the study's kernels are shut down without the SIGINT that made them log a KeyboardInterrupt ERROR.

Each case starts from the reference study's folder (issue 21): the first notebook is done and up to
date, so the stopped study executes only the second. Stopped in the notebook, the second's run is the
reference's complete run (nothing retrains); stopped in the training, the second's run is left out, so
the stopped study trains it and is stopped after its first checkpoint. (The epochs after the stop are
the margin the stop needs to reach the kernel before the run would end; the next study trains them.)
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from mace_core.book import build
from mace_core.study import execution, planning

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(900)   # the interrupt cases are marked slow

NOTEBOOK = '''# %% [markdown]
# # Interrupt test

# %% tags=["parameters"]
profile = "ci"
variant = "first"
params_dir = "params"
runs_dir = "runs"

# %%
import json
from mace_core.study.api import run_variant

run = run_variant("00_baseline", variant, profile, params_dir, runs_dir)
print(json.dumps(run.results["metrics"], sort_keys=True))

# %%
import pathlib, time

pathlib.Path(f"executing-{variant}").touch()
while pathlib.Path(f"hold-{variant}").exists():  # the test stops the study here
    time.sleep(0.05)
print("done", variant)
'''
# two runs, executed in this order: "first" completes before the stop, "second" trains long enough
# to be stopped in the middle (many short epochs: the stop reaches the kernel a few seconds after the
# signal, and at 8 epochs the run sometimes finished in that time); one training seed each
ONE_SEED = "study:\n  seeds: [0]\n"
VARIANTS = {"first": ONE_SEED,
            "second": ONE_SEED + "train:\n  epochs: 8\n  steps_per_epoch: 40\n  eval_every: 8\n"}


def _make_study(root: Path) -> Path:
    shutil.copytree(REPO / "params" / "profiles", root / "params" / "profiles")
    (root / "params" / "00_baseline").mkdir()
    for name, text in VARIANTS.items():
        (root / "params" / "00_baseline" / f"{name}.yaml").write_text(text)
    (root / "notebooks").mkdir()
    (root / "notebooks" / "00_baseline.py").write_text(NOTEBOOK)
    (root / "book").mkdir()
    (root / "book" / "intro.md").write_text("# Intro\n")
    return root


def _start(root: Path, data: Path) -> subprocess.Popen:
    code = "import sys; from mace_core.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, "study", "run", "--profile", "ci", "--data-root", str(data),
           "--jobs", "1", "--no-book"]
    # one code version for every run of the test, whatever else changes in the working tree meanwhile
    env = dict(os.environ, MACE_CODE_VERSION="interrupt-test", PYTHONPATH=str(REPO))
    return subprocess.Popen(cmd, cwd=root, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _runs(root: Path) -> dict[str, Path]:
    """variant -> run dir (from each run's config.yaml)."""
    out = {}
    for cfg in (root / "runs" / "ci").glob("*/config.yaml"):
        name = re.search(r"^name: (\S+)", cfg.read_text(), re.M)
        if name:
            out[name.group(1)] = cfg.parent
    return out


def _wait_for(condition, what: str, timeout: float = 180, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the study ended (exit {proc.returncode}) before {what}:\n{out}\n{err[-3000:]}")
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _epoch(run: Path) -> int:
    """The epochs done by the run's last checkpoint."""
    from mace_core.engine.checkpoint import load_checkpoint

    return load_checkpoint(run / "checkpoints" / "last.pt")["state"]["epoch"]


def _processes_in(root: Path) -> list[int]:
    """Processes working in the study folder: the study, its pool workers, their kernels."""
    psutil = pytest.importorskip("psutil")
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if Path(proc.cwd()).resolve() == root.resolve():
                found.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


def _outputs(path: Path) -> list[str]:
    """The code cells' sources and text outputs, without the injected parameters (paths differ)."""
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]
    return [c.source + "\n=>" + "".join(o.get("text", "") for o in c.outputs) for c in cells]


def _leftovers(root: Path) -> list[str]:
    generated = root / "book" / build.GENERATED
    return sorted(p.name for p in generated.rglob("*") if ".partial-" in p.name or p.name.endswith(".failed.ipynb"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted study: its metrics and executed notebooks, and the dataset the others share."""
    base = tmp_path_factory.mktemp("interrupt")
    data = base / "data"
    root = _make_study(base / "reference")
    rc, out, err = _finish(_start(root, data))
    assert rc == 0, out + err
    runs = _runs(root)
    metrics = {v: json.loads((runs[v] / "results.json").read_text())["metrics"] for v in VARIANTS}
    outputs = {v: _outputs(root / "book" / build.GENERATED / "00_baseline" / f"{v}.ipynb") for v in VARIANTS}
    assert "done second" in outputs["second"][-1]
    return {"data": data, "metrics": metrics, "outputs": outputs, "base": base, "root": root}


def _seeded_study(reference, name: str, with_second_run: bool) -> Path:
    """A study folder as the reference left it, minus the second notebook's page (and, unless
    ``with_second_run``, minus the second's run)."""
    root = _make_study(reference["base"] / name)
    shutil.copytree(reference["root"] / "runs", root / "runs", ignore=shutil.ignore_patterns(".locks"))
    generated = root / "book" / build.GENERATED / "00_baseline"
    shutil.copytree(reference["root"] / "book" / build.GENERATED / "00_baseline", generated)
    (generated / "second.ipynb").unlink()
    (generated / planning.STAMPS / "second.json").unlink()
    if not with_second_run:
        shutil.rmtree(_runs(root)["second"])
    return root


@pytest.mark.slow
@pytest.mark.xdist_group("interrupt")   # one worker: the module's reference study is shared
@pytest.mark.parametrize("where", ["notebook", "training"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_stopped_study_reruns_only_what_is_unfinished_with_the_same_results(reference, where, sig):
    root = _seeded_study(reference, f"{where}-{sig.name}", with_second_run=where == "notebook")
    generated = root / "book" / build.GENERATED / "00_baseline"
    if where == "notebook":
        (root / "hold-second").touch()
        second_results = _runs(root)["second"] / "results.json"
        second_written = second_results.stat().st_mtime_ns
    proc = _start(root, reference["data"])
    try:
        if where == "notebook":
            _wait_for(lambda: (root / "executing-second").exists(), "the second notebook's last cell", proc=proc)
        else:
            def training_second() -> bool:
                run = _runs(root).get("second")
                return bool(run) and (run / "checkpoints" / "last.pt").is_file() and not (run / "results.json").exists()
            _wait_for(training_second, "the second run's first checkpoint", proc=proc)
        os.killpg(proc.pid, sig)
        rc, out, err = _finish(proc, timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if sig == signal.SIGTERM:
        assert rc == 130 and "interrupted" in err, (rc, out, err)
    # nothing of the study keeps running: pool workers and kernels end (SIGKILL: kernels see their parent go)
    _wait_for(lambda: not _processes_in(root), "the study's processes to end", timeout=30)
    (root / "hold-second").unlink(missing_ok=True)

    second_run = _runs(root)["second"]
    if where == "training":
        assert (second_run / "checkpoints" / "last.pt").is_file() and not (second_run / "results.json").exists(), \
            "the study was not stopped in the middle of the training"
        assert 0 < _epoch(second_run) < 8, "the study was not stopped in the middle of the training"
    assert not (generated / "second.ipynb").exists()
    left = _leftovers(root)
    if sig == signal.SIGTERM:
        assert left == [], "SIGTERM left temp or failed notebooks behind"
    else:
        assert len(left) == 1 and left[0].startswith(".second.partial-"), left  # a SIGKILL cannot clean up
    first_results = _runs(root)["first"] / "results.json"
    first_written = first_results.stat().st_mtime_ns

    rc, out, err = _finish(_start(root, reference["data"]))
    assert rc == 0, out + err
    assert re.search(r"executed 1, up to date 1\b", out), out
    assert _leftovers(root) == []
    assert first_results.stat().st_mtime_ns == first_written  # the finished run was not retrained
    runs = _runs(root)
    for variant in VARIANTS:
        assert json.loads((runs[variant] / "results.json").read_text())["metrics"] == reference["metrics"][variant]
        assert _outputs(generated / f"{variant}.ipynb") == reference["outputs"][variant], variant
    if where == "training":
        assert json.loads((runs["second"] / "study.json").read_text())["resumed"] is True
    else:
        assert second_results.stat().st_mtime_ns == second_written  # the reference's run, not retrained


@pytest.mark.slow   # a Jupyter Book build
def test_book_build_ignores_temp_and_failed_notebooks(tmp_path):
    """The repo's book config: a temp notebook (of a live or a dead study) and a failed one beside the
    executed pages never become sources (with -W each would fail the build as 'not in any toctree')."""
    root = tmp_path / "book"
    root.mkdir()
    shutil.copy(REPO / "book" / "_config.yml", root / "_config.yml")
    (root / "intro.md").write_text("# Intro\n")
    page = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Page")])
    folder = root / build.GENERATED / "00_baseline"
    folder.mkdir(parents=True)
    for name in ("baseline.ipynb", f".baseline.partial-host-{os.getpid()}-1.ipynb", ".baseline.partial-1-2.ipynb",
                 "other.failed.ipynb"):
        nbformat.write(page, folder / name)
    build.write_toc(root, {"00_baseline": ["baseline"]})
    index = build.build_book(root)
    assert index.is_file() and (root / "_build" / "html" / build.GENERATED / "00_baseline" / "baseline.html").is_file()
    assert not list((root / "_build" / "html").rglob("*partial*")) and not list((root / "_build" / "html").rglob("*failed*"))


def test_stale_partials_of_dead_studies_on_this_host_are_removed(tmp_path):
    import socket

    folder = tmp_path / build.GENERATED / "00_baseline"
    folder.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    names = {"dead": f".a.partial-{host}-{dead.pid}-1.ipynb", "old_format_dead": f".b.partial-{dead.pid}-1.ipynb",
             "alive": f".c.partial-{host}-{os.getpid()}-1.ipynb", "other_host": f".d.partial-elsewhere-{dead.pid}-1.ipynb",
             "page": "a.ipynb"}
    for name in names.values():
        (folder / name).write_text("{}")
    removed = execution.remove_stale_partials(tmp_path)
    assert sorted(p.name for p in removed) == sorted([names["dead"], names["old_format_dead"]])
    assert sorted(p.name for p in folder.iterdir()) == sorted(names[k] for k in ("alive", "other_host", "page"))


def test_idle_kernel_is_shut_down_without_an_interrupt(monkeypatch):
    """jupyter_client interrupts (SIGINT) before every shutdown; the study's manager does so only when
    the study is being stopped (a running cell must end), never at a notebook's normal end."""
    from jupyter_client.manager import KernelManager

    sent = []

    async def record(self):
        sent.append(self.shutting_down)

    monkeypatch.setattr(KernelManager, "_async_interrupt_kernel", record)
    km = execution._kernel_manager_class()()
    km.interrupt_kernel  # the public interrupt (cell timeouts) is jupyter_client's own, untouched
    km.shutting_down = True
    stop = __import__("multiprocessing").get_context("spawn").Event()
    monkeypatch.setattr(execution, "_STOP", stop)
    asyncio.run(km._async_interrupt_kernel())
    assert sent == []
    stop.set()
    asyncio.run(km._async_interrupt_kernel())
    assert sent == [True]
    km.shutting_down = False  # an interrupt asked for outside a shutdown always goes through
    stop.clear()
    asyncio.run(km._async_interrupt_kernel())
    assert sent == [True, False]
