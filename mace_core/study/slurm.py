"""`mace study run --slurm`: write job-array scripts for a cluster instead of running.

One array per wave (runs to train, pairs reusing them, summaries), chained with
``--dependency=afterany`` so one failed task never blocks the rest, then a one-task job that builds
the book. Every array task runs ``mace study exec --manifest M --wave W --index $SLURM_ARRAY_TASK_ID``,
which re-plans from params/ and executes that one pair exactly as the local runner would (same
caching, stamps and atomic renames, the same pinned code version), so a re-submission only does what
is missing. ``submit.sh`` first prepares the dataset once (``mace study data``: generates the
embedded synthetic one, checks that a real one exists), then submits the arrays in order.

The scripts carry what real clusters ask for (account, QoS, GPUs, CPUs, memory, constraint, any
further ``#SBATCH`` line) and are checked with ``sbatch --test-only`` before ``submit.sh`` is
written, wherever ``sbatch`` exists. A task that fails leaves a record (its Slurm log, its error)
that ``mace study list`` shows beside the pair.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from mace_core.errors import MaceError
from mace_core.book.build import GENERATED
from mace_core.study import registry
from mace_core.study.planning import STAMPS, is_fresh, plan, replicates_of, waves
from mace_core.study.runner import execute_one
from mace_core.study.variants import DATA_ROOT_ENV, LLCM_ROOT_ENV, find_params_dir, resolve_path
from mace_core.utils.atomic import atomic_write_json, atomic_write_text

_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")   # Slurm's time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S
_MEM = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)
_UNREACHABLE = ("unable to contact slurm controller", "socket timed out", "connection refused",
                "could not establish a configuration source", "no such file or directory")


@dataclass
class SlurmOptions:
    """What every array task asks Slurm for (``--slurm-*`` options of ``mace study run``)."""

    partition: str | None = None
    time: str = "04:00:00"
    account: str | None = None
    qos: str | None = None
    gpus: int = 1                  # per task; 0 writes no gres line (a CPU partition)
    cpus: int = 8                  # per task (--cpus-per-task); OMP/MKL threads follow it
    mem: str | None = None         # per node, e.g. 32G
    constraint: str | None = None
    extra: tuple[str, ...] = ()    # further #SBATCH lines, e.g. "--mail-type=END" or "#SBATCH --exclusive"
    max_tasks: int | None = None   # array tasks running at once (--array=0-N%max_tasks)

    def __post_init__(self) -> None:
        if self.gpus < 0:
            raise MaceError(f"--slurm-gpus {self.gpus} must be 0 or more", "use 0 for a CPU partition (no gres line)")
        if self.cpus < 1:
            raise MaceError(f"--slurm-cpus {self.cpus} must be at least 1", "use e.g. --slurm-cpus 8")
        if self.max_tasks is not None and self.max_tasks < 1:
            raise MaceError(f"--slurm-max-tasks {self.max_tasks} must be at least 1", "leave it out for no limit")
        if not _TIME.match(self.time):
            raise MaceError(f"--slurm-time {self.time!r} is not a Slurm time",
                            "use minutes, HH:MM:SS or D-HH:MM:SS, e.g. 04:00:00")
        if self.mem is not None and not _MEM.match(self.mem):
            raise MaceError(f"--slurm-mem {self.mem!r} is not a Slurm memory size", "use e.g. 32G or 16000M")
        for name in ("partition", "account", "qos", "constraint"):
            value = getattr(self, name)
            if value is not None and (not value.strip() or any(c in value for c in "\n\r")):
                raise MaceError(f"--slurm-{name} {value!r} is empty or spans lines", f"pass one --slurm-{name} value")
        self.extra = tuple(sbatch_line(e) for e in self.extra)

    def header(self, gpus: bool = True) -> list[str]:
        lines = [f"#SBATCH --cpus-per-task={self.cpus}", f"#SBATCH --time={self.time}"]
        if gpus and self.gpus:
            lines.append(f"#SBATCH --gres=gpu:{self.gpus}")
        for name in ("partition", "account", "qos", "mem", "constraint"):
            value = getattr(self, name)
            if value:
                lines.append(f"#SBATCH --{name}={value}")
        return lines + list(self.extra)


def sbatch_line(extra: str) -> str:
    """``--mail-type=END``, ``mail-type=END`` or ``#SBATCH --mail-type=END`` -> ``#SBATCH --mail-type=END``."""
    text = extra.strip()
    if text.startswith("#SBATCH"):
        text = text[len("#SBATCH"):].strip()
    if not text or "\n" in text or "\r" in text:
        raise MaceError(f"--slurm-extra {extra!r} is not one #SBATCH option", "pass one option per --slurm-extra, "
                        "e.g. --slurm-extra=--mail-type=END")
    if not text.startswith("-"):
        text = f"--{text}"
    return f"#SBATCH {text}"


@dataclass
class SlurmScripts:
    """What :func:`write_slurm` wrote: the submit script and the sbatch scripts; ``validated`` says
    whether ``sbatch --test-only`` accepted them, ``note`` why they were not checked (a script Slurm
    rejects raises instead, and no submit script is written)."""

    submit: Path
    scripts: list[Path]
    manifest: Path
    validated: bool
    note: str = ""
    tasks: dict[str, int] = field(default_factory=dict)   # script name -> array tasks


def mace_command() -> str:
    exe = Path(sys.executable).parent / "mace"
    return shlex.quote(str(exe)) if exe.is_file() else f"{shlex.quote(sys.executable)} -m mace_core.cli"


@contextlib.contextmanager
def pinned_env(values: dict[str, str | None]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    try:
        for key, value in values.items():
            if value is not None:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _abs(path: str | None) -> str | None:
    return str(Path(path).expanduser().resolve()) if path else None


def _script(name: str, body: list[str], logs: Path, header: list[str], array: int | None,
            max_tasks: int | None) -> str:
    lines = ["#!/bin/bash", f"#SBATCH --job-name={name}",
             f"#SBATCH --output={logs}/%x-%A_%a.out" if array is not None else f"#SBATCH --output={logs}/%x-%j.out"]
    if array is not None:
        lines.append(f"#SBATCH --array=0-{array - 1}" + (f"%{max_tasks}" if max_tasks else ""))
    return "\n".join(lines + header + ["set -euo pipefail", *body, ""])


def write_slurm(profile: str, out_dir: str | Path | None = None, params_dir="params", runs_dir="runs",
                book_dir="book", notebooks_dir="notebooks", only=None, data_root: str | None = None,
                llcm_root: str | None = None, options: SlurmOptions | None = None,
                validate: bool | None = None) -> SlurmScripts:
    """Write manifest.json, one ``wave<k>_<name>.sbatch`` per wave, book.sbatch and (once they pass
    ``sbatch --test-only``, or when there is no sbatch to ask) submit.sh into ``out_dir`` (default
    ``<runs>/<profile>/slurm``). ``validate``: None = where sbatch exists, False = never, True = always
    (an error without sbatch)."""
    opts = options or SlurmOptions()
    params = find_params_dir(params_dir)
    runs = resolve_path(runs_dir, params)
    books = resolve_path(book_dir, params)
    out = (Path(out_dir) if out_dir else runs / profile / "slurm").resolve()
    data, llcm = _abs(data_root), _abs(llcm_root)
    if llcm and not Path(llcm).is_dir():
        raise MaceError(f"LLCM root {llcm!r} is not a directory",
                        "pass --llcm-root pointing at the LLCM release (or `mace data synth --like llcm`)")
    code = registry.code_version()   # pinned for every task, as the local runner pins it for its pairs
    with pinned_env({DATA_ROOT_ENV: data, LLCM_ROOT_ENV: llcm, registry.CODE_VERSION_ENV: code}):
        pairs = plan(profile, params, runs, books, notebooks_dir, only)
        pending = [p for p in pairs if p.is_summary or not is_fresh(p)]
        named = waves(pending, replicates_of(pairs))   # further training seeds train in the first wave
    logs = out / "logs"
    manifest: dict[str, Any] = {
        "profile": profile, "params_dir": str(params), "runs_dir": str(runs), "book_dir": str(books),
        "notebooks_dir": str(resolve_path(notebooks_dir, params)), "data_root": data, "llcm_root": llcm,
        "code_version": code, "logs_dir": str(logs),
        "waves": [{"name": kind, "pairs": [p.label for p in wave]} for kind, wave in named],
    }
    manifest_path = out / "manifest.json"
    submit_path = out / "submit.sh"
    submit_path.unlink(missing_ok=True)   # never leave the submit script of an earlier, different plan
    for old in out.glob("wave*.sbatch"):
        old.unlink()
    atomic_write_json(manifest_path, manifest)
    logs.mkdir(parents=True, exist_ok=True)
    mace = mace_command()
    q = shlex.quote
    env = [f"cd {q(str(params.parent))}", f"export {registry.CODE_VERSION_ENV}={q(code)}",
           f"export OMP_NUM_THREADS={opts.cpus} MKL_NUM_THREADS={opts.cpus}"]
    roots = (f" --data-root {q(data)}" if data else "") + (f" --llcm-root {q(llcm)}" if llcm else "")
    scripts, tasks = [], {}
    for k, (kind, wave) in enumerate(named):
        name = f"wave{k}_{kind}.sbatch"
        body = env + [f"{mace} study exec --manifest {q(str(manifest_path))} --wave {k} --index \"$SLURM_ARRAY_TASK_ID\""]
        atomic_write_text(out / name, _script(f"mace-{profile}-{kind}", body, logs, opts.header(), len(wave),
                                              opts.max_tasks))
        scripts.append(out / name)
        tasks[name] = len(wave)
    book_opts = SlurmOptions(**{**opts.__dict__, "cpus": min(opts.cpus, 2), "time": "00:30:00", "max_tasks": None})
    book_body = env[:2] + [f"{mace} study book --profile {q(profile)} --params-dir {q(str(params))} "
                           f"--runs-dir {q(str(runs))} --book-dir {q(str(books))} "
                           f"--notebooks-dir {q(manifest['notebooks_dir'])}{roots}"]
    atomic_write_text(out / "book.sbatch", _script(f"mace-{profile}-book", book_body, logs,
                                                   book_opts.header(gpus=False), None, None))
    scripts.append(out / "book.sbatch")
    tasks["book.sbatch"] = 1

    validated, note = validate_scripts(scripts, required=validate)

    submit = ["#!/bin/bash", f"# Written by `mace study run --profile {profile} --slurm`: prepares the dataset once,",
              "# then submits the study's job arrays in order (each starts when the previous has ended).",
              "set -euo pipefail", f"cd {q(str(params.parent))}",
              f"export {registry.CODE_VERSION_ENV}={q(code)}",
              f"{mace} study data --profile {q(profile)} --params-dir {q(str(params))}"
              + (f" --data-root {q(data)}" if data else ""),
              f"cd {q(str(out))}", "dep=''"]
    for name in tasks:
        if name == "book.sbatch":
            continue
        submit.append(f"jid=$(sbatch --parsable $dep {name}); echo \"{name}: $jid ({tasks[name]} tasks)\"; "
                      "dep=\"--dependency=afterany:$jid\"")
    submit.append("jid=$(sbatch --parsable $dep book.sbatch); echo \"book.sbatch: $jid\"")
    atomic_write_text(submit_path, "\n".join(submit) + "\n")
    submit_path.chmod(0o755)
    return SlurmScripts(submit_path, scripts, manifest_path, validated, note, tasks)


def validate_scripts(scripts: list[Path], required: bool | None = None, sbatch: str | None = None) -> tuple[bool, str]:
    """``sbatch --test-only`` on every script: (True, "") when Slurm accepts them all; (False, why) when
    they could not be checked (no sbatch, controller unreachable); MaceError naming the first script
    Slurm rejects, with its message."""
    if required is False:
        return False, "not validated (validation turned off)"
    exe = sbatch or shutil.which("sbatch")
    if exe is None:
        if required:
            raise MaceError("sbatch is not installed here, so the Slurm scripts cannot be validated",
                            "write them on the cluster's login node, or leave validation to submission")
        return False, "not validated: sbatch is not installed on this machine (checked at submission instead)"
    for script in scripts:
        try:
            proc = subprocess.run([exe, "--test-only", script.name], cwd=script.parent, capture_output=True,
                                  text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return False, "not validated: sbatch --test-only did not answer within 60 s"
        if proc.returncode != 0:
            message = " ".join((proc.stderr or proc.stdout).split())
            if any(s in message.lower() for s in _UNREACHABLE) and not required:
                return False, f"not validated: the Slurm controller did not answer ({message[:200]})"
            raise MaceError(f"Slurm rejects {script}: {message[:400]}",
                            "fix the --slurm-* options (partition, account, QoS, GPUs, memory, time, "
                            "constraint, --slurm-extra) for this cluster and write the scripts again")
    return True, ""


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise MaceError(f"manifest {path} does not exist", "write it with `mace study run --slurm`")
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------------------------
# One array task, and the record a failed one leaves for `mace study list`

def failure_path(books: Path, label: str) -> Path:
    """``book/generated/<experiment>/.stamps/<variant>[.seed<N>].slurm-failed.json`` (hidden: never in the book)."""
    experiment, rest = label.split("/", 1)
    match = re.fullmatch(r"(.+) \(seed (\d+)\)", rest)
    name = f"{match[1]}.seed{match[2]}" if match else rest
    return Path(books) / GENERATED / experiment / STAMPS / f"{name}.slurm-failed.json"


def task_log(manifest: dict[str, Any], environ=None) -> str | None:
    """This array task's log file (the --output pattern of the scripts), from Slurm's variables."""
    environ = os.environ if environ is None else environ
    name, job, task = (environ.get(k) for k in ("SLURM_JOB_NAME", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"))
    if not (name and job and task is not None):
        return None
    return str(Path(manifest.get("logs_dir") or ".") / f"{name}-{job}_{task}.out")


def execute_task(manifest_path: str | Path, wave: int, index: int) -> dict[str, Any]:
    """Execute one pair of a manifest (one array task) with the manifest's data, LLCM root and code
    version; a failure is recorded for `mace study list`, a success clears an earlier record."""
    m = read_manifest(manifest_path)
    try:
        label = m["waves"][wave]["pairs"][index]
    except (IndexError, KeyError):
        raise MaceError(f"manifest {manifest_path} has no wave {wave} index {index}",
                        "use the indices of the array job that the manifest was written with") from None
    with pinned_env({DATA_ROOT_ENV: m.get("data_root"), LLCM_ROOT_ENV: m.get("llcm_root"),
                      registry.CODE_VERSION_ENV: m.get("code_version")}):
        result = execute_one(label, m["profile"], m["params_dir"], m["runs_dir"], m["book_dir"], m["notebooks_dir"],
                             m.get("data_root"))
    record = failure_path(Path(m["book_dir"]), label)
    if result["ok"]:
        record.unlink(missing_ok=True)
    else:
        job = os.environ.get("SLURM_ARRAY_JOB_ID")
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        atomic_write_json(record, {"label": label, "error": result.get("error"), "notebook": result.get("notebook"),
                                   "log": task_log(m), "job": f"{job}_{task}" if job else None})
    return {**result, "label": label}


def read_failure(books: Path, label: str) -> dict[str, Any] | None:
    path = failure_path(books, label)
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None
