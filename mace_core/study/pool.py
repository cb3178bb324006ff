"""The worker pool of a study: ``jobs`` jobs at a time in spawned worker processes, each keeping one of
the study's GPUs for its life (on CPU each job gets an equal share of the threads), and the study's
SIGINT/SIGTERM handling: stopped, the workers and their kernels are ended and the temp notebooks removed.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterable

from tqdm.auto import tqdm

from mace_core.study import execution
from mace_core.study.execution import execute_job


def job_env(jobs: int, base: dict[str, str]) -> dict[str, str]:
    """Per-job environment: with several jobs on CPU, an equal share of the CPU threads each.
    (GPUs are given per worker process, see :func:`_claim_gpu`, not per job.)"""
    env = dict(base)
    if jobs > 1:
        threads = str(max(1, (os.cpu_count() or 1) // jobs))
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    return env


def _gpu_list(environ=None) -> list[str]:
    """The GPUs this study may use, as entries for the workers' CUDA_VISIBLE_DEVICES: the entries of the
    parent's CUDA_VISIBLE_DEVICES when it is set (indices, UUIDs or MIG names, e.g. "2,3" under Slurm;
    set but empty means none), else every device torch sees ("0" .. "n-1")."""
    environ = os.environ if environ is None else environ
    given = environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [entry.strip() for entry in given.split(",") if entry.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - no torch/CUDA means CPU
        return []


def gpu_sharing(jobs: int, gpus: list[str]) -> str | None:
    """The warning for more ``--jobs`` than visible GPUs (worker k keeps GPU k mod G, see
    :func:`_claim_gpu`): how many jobs share each GPU; None when every job has a GPU of its own (or
    there is none: CPU)."""
    if jobs <= 1 or not gpus or jobs <= len(gpus):
        return None
    per = [sum(1 for k in range(jobs) if k % len(gpus) == i) for i in range(len(gpus))]
    shares = ", ".join(f"GPU {g}: {n} jobs" for g, n in zip(gpus, per))
    return (f"--jobs {jobs} with {len(gpus)} visible GPU{'s' if len(gpus) > 1 else ''}: jobs share GPUs ({shares}), "
            f"each job with a share of its GPU's memory and time; use --jobs {len(gpus)} for one job per GPU")


def _claim_gpu(counter, gpus: list[str]) -> None:
    """Pool initializer: worker k of the pool keeps entry k % len(gpus) of the parent's GPU list for its
    whole life, so N workers on N GPUs never share one, whichever job finishes first (a per-job
    round-robin would), and a worker only ever sees a GPU that the user gave the study."""
    with counter.get_lock():
        slot = counter.value
        counter.value += 1
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]


def _init_worker(counter, gpus: list[str], stop) -> None:
    execution._STOP = stop
    _claim_gpu(counter, gpus)


def _signals_interrupt(state: dict[str, Any]) -> dict | None:
    """SIGTERM, like SIGINT, raises KeyboardInterrupt in the study process, so that the clean-up of
    :func:`_run_jobs` runs instead of the process just dying; ``state['signal']`` names it. A signal
    during the clean-up (``state['cleaning']``) is only recorded, so it cannot cut the clean-up short.
    Returns the handlers to restore (None off the main thread, where signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        state["signal"] = signal.Signals(signum).name
        if not state.get("cleaning"):
            state["cleaning"] = True
            raise KeyboardInterrupt(state["signal"])

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in saved:
        signal.signal(sig, stop)
    return saved


def _restore_signals(saved: dict | None) -> None:
    for sig, handler in (saved or {}).items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _stop_pool(pool: ProcessPoolExecutor, grace: float = 3.0, patience: float = 20.0) -> None:
    """Stop the workers and their kernels. A SIGTERM to the whole process group has already reached
    the workers, and papermill is shutting its kernel down (which ends a running cell); after
    ``grace`` seconds the workers still there get SIGTERM, after ``patience`` more SIGKILL. A kernel
    whose worker is gone exits by itself within a second (ipykernel watches its parent)."""
    workers = list((pool._processes or {}).values())  # the executor has no public list of its processes
    pool.shutdown(wait=False, cancel_futures=True)
    for wait, end in ((grace, None), (patience, "terminate"), (5.0, "kill")):
        if end:
            for worker in workers:
                if worker.is_alive():
                    getattr(worker, end)()
        deadline = time.monotonic() + wait
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        if not any(w.is_alive() for w in workers):
            return


def _run_jobs(jobs_now: list[dict[str, Any]], jobs: int, execute) -> Iterable[dict[str, Any]]:
    """Run the jobs, yielding each result as it ends. Notebooks always run in worker processes (papermill
    replaces the signal handlers of the process it runs in, so the study process keeps its own); only
    a test's ``execute`` stand-in with one job at a time runs here. Interrupted (SIGINT/SIGTERM), the
    workers and kernels are stopped and the temp notebooks removed; the next study runs what is left."""
    if not jobs_now:
        return
    state: dict[str, Any] = {}
    saved_signals = _signals_interrupt(state)
    try:
        if execute is not None and (jobs <= 1 or len(jobs_now) <= 1):
            saved = dict(os.environ)
            try:
                for job in jobs_now:
                    yield execute_job(job, execute)
            finally:
                os.environ.clear()
                os.environ.update(saved)
            return
        # spawn: a clean interpreter per worker, so each kernel inherits only its own slot's environment
        context = get_context("spawn")
        stop = context.Event()
        gpus = _gpu_list() if jobs > 1 else []  # one job at a time sees every GPU the study was given
        pool = ProcessPoolExecutor(max_workers=min(jobs, len(jobs_now)), mp_context=context,
                                   initializer=_init_worker, initargs=(context.Value("i", 0), gpus, stop))
        try:
            futures = [pool.submit(execute_job, job, execute) for job in jobs_now]
            for future in as_completed(futures):  # report each job when it ends, not in submission order
                yield future.result()
        except BaseException as exc:  # a signal, or a worker that died: stop the others, remove temp files
            state["cleaning"] = True
            stop.set()
            _stop_pool(pool)
            for job in jobs_now:
                if job.get("tmp"):
                    Path(job["tmp"]).unlink(missing_ok=True)
            if state.get("signal"):
                tqdm.write(f"study stopped ({state['signal']}): its notebooks and kernels are ended and their temp "
                           "files removed; run it again to execute only what is unfinished", file=sys.stderr)
                if not isinstance(exc, KeyboardInterrupt):  # e.g. the pool saw its workers die first
                    raise KeyboardInterrupt(state["signal"]) from exc
            raise
        finally:
            pool.shutdown(wait=True)
    finally:
        _restore_signals(saved_signals)
