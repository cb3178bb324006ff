"""Execution of one job (in the study process or a pool worker): a (notebook, variant) pair executed by
papermill into a hidden temp notebook beside its page and renamed into place with its stamp, or a
further seed replicate trained through the notebook API. A failing pair leaves
``<name>.failed.ipynb`` beside where its notebook would go; a stopped one leaves nothing.
"""
from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path
from typing import Any, Callable

from mace_core.book.build import GENERATED
from mace_core.jupyter.kernel import DISPLAY_NAME, KERNEL_NAME
from mace_core.study.planning import Pair, SeedRun
from mace_core.utils.atomic import atomic_write_json

# Temp notebooks: ".<name>.partial-<host>-<pid>-<ns>.ipynb" beside the output, named after the study
# process that writes them, so a later study can tell a dead study's leftovers from a live one's.
# (Older ones had no host.) The book never reads them: book/_config.yml excludes hidden files.
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.partial-(?:(?P<host>.+)-)?(?P<pid>\d+)-\d+\.ipynb$")
_STOP = None  # in pool workers: the study's "stopping" Event (set on SIGINT/SIGTERM), see pool._run_jobs


def _stop_requested() -> bool:
    return _STOP is not None and _STOP.is_set()


def _partial_path(output: Path, name: str) -> Path:
    return output.with_name(f".{name}.partial-{socket.gethostname()}-{os.getpid()}-{time.time_ns()}.ipynb")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_partials(book_dir: Path) -> list[Path]:
    """Delete the temp notebooks of studies that were killed (SIGKILL, power loss) on this host:
    those whose writing process is gone. Another host's are kept (a Slurm task may be writing them)."""
    removed = []
    for path in sorted(Path(book_dir, GENERATED).glob("*/.*.partial-*.ipynb")):
        match = _PARTIAL.match(path.name)
        if match and match["host"] in (None, socket.gethostname()) and not _alive(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _kernel_manager_class():
    """jupyter_client's kernel manager, except that shutting down a kernel that is not being stopped
    sends no SIGINT first: jupyter_client always interrupts before a shutdown, and a kernel that is
    between two messages then logs ``[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel``
    although nothing failed. While the study is being stopped the interrupt stays (it ends a running
    cell at once, e.g. a training)."""
    import asyncio

    from jupyter_client.manager import AsyncKernelManager

    class StudyKernelManager(AsyncKernelManager):
        async def _async_interrupt_kernel(self) -> None:
            if self.shutting_down and not _stop_requested():
                if _STOP is None:
                    return
                await asyncio.sleep(0.05)  # a SIGTERM to the process group also reaches the study: let it say so
                if not _stop_requested():
                    return
            await super()._async_interrupt_kernel()

    return StudyKernelManager


def title_with_variant(nb, variant: str) -> None:
    """Name the variant in the notebook's title, so the book's table of contents tells pages apart."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            lines = cell.source.splitlines()
            if lines and lines[0].startswith("# "):
                lines[0] = f"{lines[0]}: {variant}"
                cell.source = "\n".join(lines)
            return


def papermill_execute(job: dict[str, Any]) -> None:
    """Execute ``job['notebook']`` (jupytext) with ``job['parameters']`` into ``job['tmp']``.

    The kernel is stopped at once when the last cell has ended (nbclient's ``shutdown_kernel="immediate"``):
    its outputs are complete by then, and the polite shutdown only waits for the interpreter to tear
    down torch and matplotlib, 1-2 s of every page (measured: 1.9 s on average over the ci study's 27
    pages, under load)."""
    import jupytext
    import papermill

    nb = jupytext.read(job["notebook"])
    if job["parameters"].get("variant"):
        title_with_variant(nb, job["parameters"]["variant"])
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": DISPLAY_NAME, "language": "python"}
    papermill.execute_notebook(nb, job["tmp"], parameters=job["parameters"], kernel_name=KERNEL_NAME,
                               cwd=job["cwd"], progress_bar=False, log_output=False, start_timeout=120,
                               kernel_manager_class=_kernel_manager_class(), shutdown_kernel="immediate")
    hide_injected_parameters(job["tmp"])


def hide_injected_parameters(path: str | Path) -> None:
    """Tag papermill's injected-parameters cell ``remove-cell``: the book shows narrative and outputs,
    not the run's plumbing (the notebook file keeps it, for re-running by hand)."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    changed = False
    for cell in nb.cells:
        tags = list(cell.metadata.get("tags", []))
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = tags + ["remove-cell"]
            changed = True
    if changed:
        nbformat.write(nb, str(path))


def execute_job(job: dict[str, Any], execute: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run one job with its environment; on success rename the temp notebook into place and stamp it."""
    if job.get("kind") == "train":
        return execute_train_job(job)
    for key, value in job["env"].items():
        os.environ[key] = value
    output, tmp, failed = Path(job["output"]), Path(job["tmp"]), Path(job["failed"])
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    try:
        (execute or papermill_execute)(job)
    except BaseException as exc:  # a failing notebook must not stop the others
        if isinstance(exc, (KeyboardInterrupt, SystemExit)) or _stop_requested():
            # stopped, not failed: nothing of it stays behind, and the next study executes it again
            tmp.unlink(missing_ok=True)
            if not isinstance(exc, Exception):
                raise
            return {"label": job["label"], "ok": False, "seconds": time.time() - start, "interrupted": True,
                    "error": "interrupted", "notebook": None}
        if tmp.is_file():
            os.replace(tmp, failed)
        first = str(exc).strip().splitlines()
        return {"label": job["label"], "ok": False, "seconds": time.time() - start,
                "error": f"{type(exc).__name__}: {first[-1] if first else ''}"[:500],
                "notebook": str(failed) if failed.is_file() else None}
    if not tmp.is_file():
        return {"label": job["label"], "ok": False, "seconds": time.time() - start,
                "error": "the execution wrote no notebook", "notebook": None}
    os.replace(tmp, output)
    atomic_write_json(job["stamp_path"], job["stamp"])
    if failed.is_file():
        failed.unlink()
    return {"label": job["label"], "ok": True, "seconds": time.time() - start, "notebook": str(output)}


def execute_train_job(job: dict[str, Any]) -> dict[str, Any]:
    """A seed replicate: train it; a failure is reported, never raised (the others go on)."""
    for key, value in job["env"].items():
        os.environ[key] = value
    start = time.time()
    try:
        train_replicate(job)
    except Exception as exc:  # noqa: BLE001 - reported like a failing notebook
        first = str(exc).strip().splitlines()
        return {"label": job["label"], "kind": "train", "ok": False, "seconds": time.time() - start,
                "error": f"{type(exc).__name__}: {first[-1] if first else ''}"[:500], "notebook": None}
    return {"label": job["label"], "kind": "train", "ok": True, "seconds": time.time() - start, "notebook": None}


def _job(pair: Pair, cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    tmp = _partial_path(pair.output, pair.name)
    return {"label": pair.label, "notebook": str(pair.notebook), "output": str(pair.output), "tmp": str(tmp),
            "failed": str(pair.failed_path), "stamp_path": str(pair.stamp_path), "stamp": pair.stamp,
            "parameters": pair.parameters, "cwd": str(cwd), "env": dict(env)}


def train_replicate(job: dict[str, Any]) -> None:
    """Train (or resume) one seed replicate through the notebook API, as a notebook would."""
    from mace_core.study import api

    cwd = os.getcwd()
    os.chdir(job["cwd"])
    try:
        api.run_variant(job["experiment"], job["variant"], job["profile"], job["params_dir"], job["runs_dir"],
                        seed=job["seed"])
        for experiment, variant in job.get("sweeps", []):   # cached beside the run for the summaries
            run = api.run_variant(experiment, variant, job["profile"], job["params_dir"], job["runs_dir"],
                                  seed=job["seed"])
            if run.study.get("multi_query"):
                api.multi_query_evals([run])
            if run.study.get("occlusion"):
                api.occlusion_evals([run])
    finally:
        os.chdir(cwd)


def _replicate_job(rep: SeedRun, profile: str, params: Path, runs: Path, env: dict[str, str]) -> dict[str, Any]:
    return {"kind": "train", "label": rep.label, "experiment": rep.experiment, "variant": rep.variant,
            "seed": rep.seed, "sweeps": [list(s) for s in rep.sweeps], "profile": profile, "params_dir": str(params), "runs_dir": str(runs),
            "cwd": str(params.parent), "env": dict(env)}
