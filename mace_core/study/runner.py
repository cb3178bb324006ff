"""`mace study run`: execute every (notebook, variant) pair with papermill into the book, then the
summaries, then build the book.

Caching: a pair is skipped when its run is complete (params hash + code version, see registry) AND its
executed notebook exists with a stamp naming the same run key, notebook source and parameters.
Order: pairs that train a run (one per distinct run key) first, then pairs that reuse a run
(experiments 4 and 6 evaluate the baseline), then summaries. Within a wave, ``jobs`` pairs run in
parallel: each worker process keeps one of the study's GPUs (one entry of the CUDA_VISIBLE_DEVICES the
study was started with, or one device when it is unset) for its life, and on CPU each
job gets an equal share of the threads.
A failing pair leaves ``<name>.failed.ipynb`` beside where its notebook would go and does not stop
the others. Notebooks are executed into a hidden temp file beside their page (never a book source,
see book/_config.yml) and renamed, so an interrupted study re-run completes only what is missing.
Stopped by SIGINT/SIGTERM, the study ends its workers and kernels and removes its temp files; the
temp files of a killed study (SIGKILL) are removed by the next one.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterable

from tqdm.auto import tqdm

from mace_core.errors import MaceError
from mace_core.study import book, registry
from mace_core.study.variants import (DATA_ROOT_ENV, LLCM_ROOT_ENV, find_params_dir, list_experiments, list_variants, resolve,
                                      resolve_path, seeds_of_variant, with_seed)
from mace_core.utils.atomic import atomic_write_json, atomic_write_text

KERNEL_NAME = "mace-study"
STAMPS = ".stamps"
_ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"
# what the notebooks call: run_variant, evaluate_variant, load_results; notebook_run (their parameters)
_NOTEBOOK_API = [Path(__file__).resolve().with_name(n) for n in ("api.py", "notebook.py")]


@dataclass
class Pair:
    """One notebook execution: a variant notebook (``variant`` set) or an experiment summary."""

    experiment: str
    name: str                      # variant name, or "summary"
    notebook: Path                 # jupytext source
    output: Path                   # executed .ipynb in the book tree
    parameters: dict[str, Any]
    run_key: str | None = None     # None for summaries
    run_dir: Path | None = None
    depends: list[str] = field(default_factory=list)   # run keys a summary reads
    stamp: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None        # the training seed the variant's page shows (its first)
    sweeps: bool = False           # a summary that evaluates test-time sweeps (experiments 4, 6): slow
    replicates: list["SeedRun"] = field(default_factory=list)   # its other training seeds

    @property
    def label(self) -> str:
        return f"{self.experiment}/{self.name}"

    @property
    def stamp_path(self) -> Path:
        return self.output.parent / STAMPS / f"{self.name}.json"

    @property
    def failed_path(self) -> Path:
        return self.output.with_name(f"{self.name}.failed.ipynb")

    @property
    def is_summary(self) -> bool:
        return self.run_key is None


@dataclass
class SeedRun:
    """A further training-seed replicate of a variant: trained by the runner itself (no notebook);
    the variant's page shows its first seed, the experiment's summary aggregates all seeds."""

    experiment: str
    variant: str
    seed: int
    run_key: str
    run_dir: Path

    @property
    def label(self) -> str:
        return f"{self.experiment}/{self.variant} (seed {self.seed})"


def _sha(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def notebook_hash(notebook: Path) -> str:
    """The notebook's source plus the code it calls to fetch and draw results (the notebook API and
    the analysis package): a change re-executes, never retrains."""
    return _sha([notebook, *_NOTEBOOK_API, *sorted(_ANALYSIS.rglob("*.py"))])


def parse_only(only: str | Iterable[str] | None, experiments: list[str]) -> list[str]:
    """``"00,04"`` or ``["00_baseline"]`` -> matching experiment names; MaceError naming unknown ones."""
    if not only:
        return experiments
    items = [s.strip() for s in (only.split(",") if isinstance(only, str) else only) if s.strip()]
    chosen = []
    for item in items:
        match = [e for e in experiments if e == item or e.split("_", 1)[0] == item]
        if not match:
            from mace_core.study.variants import OPTIONAL_EXPERIMENTS

            optional = [e for e in OPTIONAL_EXPERIMENTS if e == item or e.split("_", 1)[0] == item]
            if optional:   # an optional layer whose data was not given
                raise MaceError(f"--only {item!r} names the optional layer {optional[0]}, which needs its data",
                                "also pass --llcm-root PATH (the LLCM folder)")
            raise MaceError(f"--only {item!r} names no experiment", f"use numbers or names from: {', '.join(experiments)}")
        chosen += match
    return [e for e in experiments if e in chosen]


def plan(profile: str, params_dir="params", runs_dir="runs", book_dir="book", notebooks_dir="notebooks",
         only=None) -> list[Pair]:
    """Every pair of the selected experiments, with the stamp it must match to be skipped."""
    params = find_params_dir(params_dir)
    runs = resolve_path(runs_dir, params)
    books = resolve_path(book_dir, params)
    notebooks = resolve_path(notebooks_dir, params)
    pairs: list[Pair] = []
    for experiment in parse_only(only, list_experiments(params)):
        source = notebooks / f"{experiment}.py"
        summary = notebooks / f"{experiment}_summary.py"
        if not source.is_file():
            raise MaceError(f"experiment {experiment} has no notebook {source}", "write it, or leave it out with --only")
        out_dir = books / book.GENERATED / experiment
        keys = []
        sweeps = False
        shown = {"params_dir": _shown(params, params.parent), "runs_dir": _shown(runs, params.parent)}
        for variant in list_variants(experiment, params):
            v = resolve(experiment, variant, profile, params)
            sweeps = sweeps or bool(v.study.get("multi_query") or v.study.get("occlusion"))
            seeds = seeds_of_variant(v)
            seeded = [(s, registry.run_key(with_seed(v, s).config)) for s in seeds]
            key = seeded[0][1]
            keys += [k for _, k in seeded]
            parameters = {"profile": profile, "variant": variant, **shown}
            pair = Pair(experiment, variant, source, out_dir / f"{variant}.ipynb", parameters, key,
                        registry.run_dir_for(runs, profile, key), seed=seeds[0],
                        replicates=[SeedRun(experiment, variant, s, k, registry.run_dir_for(runs, profile, k))
                                    for s, k in seeded[1:]])
            pair.stamp = {"run": key, "notebook": notebook_hash(source), "parameters": parameters}
            pairs.append(pair)
        if summary.is_file():
            parameters = {"profile": profile, **shown}
            pair = Pair(experiment, book.SUMMARY, summary, out_dir / f"{book.SUMMARY}.ipynb", parameters,
                        depends=keys, sweeps=sweeps)
            pairs.append(pair)
    return pairs


def _shown(path: Path, project: Path) -> str:
    """A folder as the notebooks receive it: relative to the project root (their working directory),
    so no absolute path of the building machine reaches the book."""
    return Path(os.path.relpath(path, project)).as_posix()


def _summary_stamp(pair: Pair, runs_dir: Path, profile: str) -> dict[str, Any]:
    done = sorted({k for k in pair.depends if registry.is_complete(registry.run_dir_for(runs_dir, profile, k))})
    return {"runs": done, "notebook": notebook_hash(pair.notebook), "parameters": pair.parameters}


def is_fresh(pair: Pair) -> bool:
    if not pair.output.is_file() or not pair.stamp_path.is_file():
        return False
    if pair.run_dir is not None and not registry.is_complete(pair.run_dir):
        return False
    try:
        return json.loads(pair.stamp_path.read_text()) == pair.stamp
    except (OSError, json.JSONDecodeError):
        return False


# ---------------------------------------------------------------------------------------------
# Execution of one pair (in this process or a worker process)

# Temp notebooks: ".<name>.partial-<host>-<pid>-<ns>.ipynb" beside the output, named after the study
# process that writes them, so a later study can tell a dead study's leftovers from a live one's.
# (Older ones had no host.) The book never reads them: book/_config.yml excludes hidden files.
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.partial-(?:(?P<host>.+)-)?(?P<pid>\d+)-\d+\.ipynb$")
_STOP = None  # in pool workers: the study's "stopping" Event (set on SIGINT/SIGTERM), see _run_jobs


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
    for path in sorted(Path(book_dir, book.GENERATED).glob("*/.*.partial-*.ipynb")):
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


def kernel_dir(runs_dir: Path) -> Path:
    """A kernelspec pointing at this interpreter, so notebooks run with the study's own environment."""
    root = Path(runs_dir) / ".jupyter"
    # Log level ERROR: the kernel's start-up warnings (e.g. about its loopback TCP transport) would
    # otherwise be printed once per executed notebook; notebook errors still reach papermill.
    # -W: `tqdm.auto` (the trainer's bars) warns in every kernel that trains, naming the absolute path
    # of its own file, that ipywidgets is missing; papermill has no widget front end to show a bar in
    # anyway (bars are off in notebooks), so the warning would only put noise into the book's pages.
    spec = {"argv": [sys.executable, "-W", "ignore:IProgress not found", "-m", "ipykernel_launcher",
                     "-f", "{connection_file}", "--IPKernelApp.log_level=ERROR"],
            "display_name": "Python (mace-study)", "language": "python"}
    path = root / "kernels" / KERNEL_NAME / "kernel.json"
    if not path.is_file() or json.loads(path.read_text()) != spec:
        atomic_write_text(path, json.dumps(spec, indent=1))
    return root


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
    """Execute ``job['notebook']`` (jupytext) with ``job['parameters']`` into ``job['tmp']``."""
    import jupytext
    import papermill

    nb = jupytext.read(job["notebook"])
    if job["parameters"].get("variant"):
        title_with_variant(nb, job["parameters"]["variant"])
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python (mace-study)", "language": "python"}
    papermill.execute_notebook(nb, job["tmp"], parameters=job["parameters"], kernel_name=KERNEL_NAME,
                               cwd=job["cwd"], progress_bar=False, log_output=False, start_timeout=120,
                               kernel_manager_class=_kernel_manager_class())
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


def _claim_gpu(counter, gpus: list[str]) -> None:
    """Pool initializer: worker k of the pool keeps entry k % len(gpus) of the parent's GPU list for its
    whole life, so N workers on N GPUs never share one, whichever job finishes first (a per-job
    round-robin would), and a worker only ever sees a GPU that the user gave the study."""
    with counter.get_lock():
        slot = counter.value
        counter.value += 1
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]


# ---------------------------------------------------------------------------------------------

@dataclass
class StudyReport:
    executed: list[dict[str, Any]]
    skipped: list[str]
    failed: list[dict[str, Any]]
    index: Path | None
    seconds: float
    trained: list[dict[str, Any]] = field(default_factory=list)   # seed replicates the runner trained

    @property
    def ok(self) -> bool:
        return not self.failed


def waves(pending: list[Pair], replicates: Iterable[SeedRun] = ()) -> list[tuple[str, list]]:
    """("train", first pair of every run not yet complete + every incomplete seed replicate),
    ("reuse", other variant pairs), ("summary", summaries); empty waves left out. Runs shared by
    several variants (same key) are trained once."""
    producers, seen, consumers, summaries = [], set(), [], []
    for pair in pending:
        if pair.is_summary:
            summaries.append(pair)
        elif pair.run_key not in seen and not registry.is_complete(pair.run_dir):
            seen.add(pair.run_key)
            producers.append(pair)
        else:
            consumers.append(pair)
    for rep in replicates:
        if rep.run_key not in seen and not registry.is_complete(rep.run_dir):
            seen.add(rep.run_key)
            producers.append(rep)
    # the summaries that evaluate test-time sweeps take longest: start them first (the wave ends with its
    # slowest job, so with several workers the short ones fill in beside them)
    summaries.sort(key=lambda p: not p.sweeps)
    return [(n, w) for n, w in (("train", producers), ("reuse", consumers), ("summary", summaries)) if w]


def replicates_of(pairs: Iterable[Pair]) -> list[SeedRun]:
    """Every further seed replicate of the planned variants (whether its page is fresh or not)."""
    return [rep for pair in pairs for rep in pair.replicates]


def train_replicate(job: dict[str, Any]) -> None:
    """Train (or resume) one seed replicate through the notebook API, as a notebook would."""
    from mace_core.study import api

    cwd = os.getcwd()
    os.chdir(job["cwd"])
    try:
        api.run_variant(job["experiment"], job["variant"], job["profile"], job["params_dir"], job["runs_dir"],
                        seed=job["seed"])
    finally:
        os.chdir(cwd)


def _replicate_job(rep: SeedRun, profile: str, params: Path, runs: Path, env: dict[str, str]) -> dict[str, Any]:
    return {"kind": "train", "label": rep.label, "experiment": rep.experiment, "variant": rep.variant,
            "seed": rep.seed, "profile": profile, "params_dir": str(params), "runs_dir": str(runs),
            "cwd": str(params.parent), "env": dict(env)}


def ensure_data(profile: str, params_dir="params") -> Path:
    """Generate the profile's synthetic dataset when it is missing (parameters from the profile's
    ``study.synthetic``); check that a real dataset folder exists. Honours MACE_DATA_ROOT."""
    first = list_experiments(params_dir)[0]
    v = resolve(first, list_variants(first, params_dir)[0], profile, params_dir)
    root = Path(v.config.data.root)
    synth = v.study.get("synthetic")
    if v.config.data.source == "synthetic" and synth is not None:
        from mace_core.data.synthetic import MARKER, generate

        if not (root / MARKER).is_file():
            print(f"generating the synthetic dataset into {root} ...", file=sys.stderr)
        # reused when its marker records the same parameters, regenerated when the profile changed them
        generate(root, **synth)
        return root
    if not root.is_dir():
        raise MaceError(f"dataset folder {root} (data.root of profile {profile}) does not exist",
                        "pass --data-root /path/to/SYSU-MM01 (the extracted dataset)")
    return root


def run_study(profile: str, params_dir="params", runs_dir="runs", book_dir="book", notebooks_dir="notebooks",
              only=None, jobs: int = 1, force: bool = False, data_root: str | None = None,
              build: bool = True, prepare_data: bool = True, llcm_root: str | None = None,
              execute: Callable[[dict[str, Any]], None] | None = None, progress: bool = True) -> StudyReport:
    """Execute what is missing, write the TOC and runs table, build the book (see module docstring)."""
    start = time.time()
    if jobs < 1:
        raise MaceError(f"--jobs {jobs} must be at least 1", "use --jobs 1 (or the number of GPUs)")
    params = find_params_dir(params_dir)
    runs = resolve_path(runs_dir, params)
    books = resolve_path(book_dir, params)
    stale = remove_stale_partials(books)  # left by a study that was killed; never part of the book
    if stale and progress:
        print(f"removed {len(stale)} temp notebook(s) left by an interrupted study", file=sys.stderr)
    pinned = {registry.CODE_VERSION_ENV: registry.source_version() if not os.environ.get(registry.CODE_VERSION_ENV)
              else os.environ[registry.CODE_VERSION_ENV]}
    if data_root:
        pinned[DATA_ROOT_ENV] = str(Path(data_root).expanduser().resolve())
    if llcm_root:   # adds the optional LLCM layer (experiment 07_llcm) to the study and the book
        llcm_path = Path(llcm_root).expanduser().resolve()
        if not llcm_path.is_dir():
            raise MaceError(f"LLCM root {str(llcm_path)!r} is not a directory",
                            "pass --llcm-root pointing at the LLCM release (or `mace data synth --like llcm`)")
        pinned[LLCM_ROOT_ENV] = str(llcm_path)
    saved_env = {k: os.environ.get(k) for k in pinned}
    base_env: dict[str, str] = dict(pinned)
    os.environ.update(pinned)
    try:
        if prepare_data:
            ensure_data(profile, params)
        pairs = plan(profile, params, runs, books, notebooks_dir, only)
        replicates = replicates_of(pairs)
        if force:
            for pair in pairs:
                if pair.run_dir is not None and pair.run_dir.exists():
                    shutil.rmtree(pair.run_dir)
                pair.stamp_path.unlink(missing_ok=True)
            for rep in replicates:
                shutil.rmtree(rep.run_dir, ignore_errors=True)
        base_env["JUPYTER_PATH"] = os.pathsep.join(
            [str(kernel_dir(runs))] + ([os.environ["JUPYTER_PATH"]] if os.environ.get("JUPYTER_PATH") else []))
        executed, failed, skipped, trained = [], [], [], []
        pending = []
        for pair in pairs:
            if pair.is_summary:
                pending.append(pair)   # stamped after the variants ran (their runs decide it)
            elif is_fresh(pair):
                skipped.append(pair.label)
            else:
                pending.append(pair)
        planned = waves(pending, replicates)
        bar = tqdm(total=sum(len(w) for _, w in planned), desc=f"study ({profile})", unit="job",
                   disable=not progress)
        failed_keys: dict[str, str] = {}
        for _, wave in planned:
            jobs_now = []
            for pair in wave:
                if isinstance(pair, SeedRun):
                    jobs_now.append(_replicate_job(pair, profile, params, runs, job_env(jobs, base_env)))
                    continue
                if pair.run_key in failed_keys:  # its run failed to train once already: don't retry here
                    failed.append({"label": pair.label, "ok": False, "seconds": 0.0, "notebook": None,
                                   "error": f"its run failed to train in {failed_keys[pair.run_key]}"})
                    bar.update(1)
                    continue
                if pair.is_summary:
                    pair.stamp = _summary_stamp(pair, runs, profile)
                    if is_fresh(pair):
                        skipped.append(pair.label)
                        bar.update(1)
                        continue
                jobs_now.append(_job(pair, params.parent, job_env(jobs, base_env)))
            key_of = {p.label: p.run_key for p in wave}
            for result in _run_jobs(jobs_now, jobs, execute):
                if not result["ok"]:
                    failed.append(result)
                else:
                    (trained if result.get("kind") == "train" else executed).append(result)
                key = key_of.get(result["label"])
                if not result["ok"] and key and not registry.is_complete(registry.run_dir_for(runs, profile, key)):
                    failed_keys[key] = result["notebook"] or result["label"]
                bar.set_postfix_str(result["label"])
                bar.update(1)
                if not result["ok"]:
                    tqdm.write(f"FAILED {result['label']}: {result['error']} (notebook: {result['notebook']})")
        bar.close()
        index = finish_book(profile, params, runs, books, notebooks_dir, only) if build else None
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return StudyReport(executed, skipped, failed, index, time.time() - start, trained)


def _init_worker(counter, gpus: list[str], stop) -> None:
    global _STOP
    _STOP = stop
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


def execute_one(label: str, profile: str, params_dir="params", runs_dir="runs", book_dir="book",
                notebooks_dir="notebooks", data_root: str | None = None) -> dict[str, Any]:
    """Execute one pair by label (``experiment/variant``, ``experiment/summary`` or a seed replicate's
    ``experiment/variant (seed N)``): a Slurm array task."""
    if data_root:
        os.environ[DATA_ROOT_ENV] = str(Path(data_root).expanduser().resolve())
    params = find_params_dir(params_dir)
    runs = resolve_path(runs_dir, params)
    experiment = label.split("/", 1)[0]
    planned = plan(profile, params, runs, book_dir, notebooks_dir, [experiment])
    replicate = [r for r in replicates_of(planned) if r.label == label]
    if replicate:  # a further training seed: train it (a no-op when already complete)
        return execute_train_job(_replicate_job(replicate[0], profile, params, runs, {}))
    pairs = [p for p in planned if p.label == label]
    if not pairs:
        raise MaceError(f"{label!r} is not a pair of the study", "check the manifest against params/ and notebooks/")
    pair = pairs[0]
    if pair.is_summary:
        pair.stamp = _summary_stamp(pair, runs, profile)
    if is_fresh(pair):
        return {"label": label, "ok": True, "seconds": 0.0, "notebook": str(pair.output), "skipped": True}
    env = {"JUPYTER_PATH": str(kernel_dir(runs))}
    return execute_job(_job(pair, params.parent, env))


def executed_pages(pairs: list[Pair]) -> dict[str, list[str]]:
    """Experiment -> notebook names that exist executed and stamped (what the TOC may list)."""
    out: dict[str, list[str]] = {}
    for pair in pairs:
        if pair.output.is_file() and pair.stamp_path.is_file():
            out.setdefault(pair.experiment, []).append(pair.name)
    return out


def finish_book(profile: str, params_dir="params", runs_dir="runs", book_dir="book", notebooks_dir="notebooks",
                only=None) -> Path:
    """TOC + runs table from what exists on disk, then the book build; returns the index page path.
    The TOC lists every experiment executed so far (not only those selected with --only)."""
    params = find_params_dir(params_dir)
    runs = resolve_path(runs_dir, params)
    books = resolve_path(book_dir, params)
    pairs = plan(profile, params, runs, books, notebooks_dir, None)
    pages = executed_pages(pairs)
    book.write_overview(books, profile, params, runs, chapters=pages)   # results at a glance, stored results only
    book.write_toc(books, pages)
    book.write_runs_table(books, [p.run_dir for p in pairs if p.run_dir is not None]
                          + [r.run_dir for r in replicates_of(pairs)])
    return book.build_book(books)

