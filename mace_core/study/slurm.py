"""`mace study run --slurm`: write job-array scripts for a cluster instead of running.

One array per wave (runs to train, pairs reusing them, summaries), chained with
``--dependency=afterany`` so one failed task never blocks the rest, then a one-task job that builds
the book. Every array task runs ``mace study exec --manifest M --wave W --index $SLURM_ARRAY_TASK_ID``,
which re-plans from params/ and executes that one pair exactly as the local runner would (same
caching, stamps and atomic renames), so a re-submission only does what is missing.
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

from mace_core.errors import MaceError
from mace_core.study.planning import is_fresh, plan, replicates_of, waves
from mace_core.study.variants import find_params_dir, resolve_path
from mace_core.utils.atomic import atomic_write_json, atomic_write_text


def mace_command() -> str:
    exe = Path(sys.executable).parent / "mace"
    return shlex.quote(str(exe)) if exe.is_file() else f"{shlex.quote(sys.executable)} -m mace_core.cli"


def _sbatch(name: str, body: str, logs: Path, array: int | None, gpus: int, cpus: int, time: str,
            partition: str | None) -> str:
    lines = ["#!/bin/bash", f"#SBATCH --job-name={name}", f"#SBATCH --cpus-per-task={cpus}",
             f"#SBATCH --time={time}", f"#SBATCH --output={logs}/%x-%A_%a.out"]
    if array is not None:
        lines.append(f"#SBATCH --array=0-{array - 1}")
    if gpus:
        lines.append(f"#SBATCH --gres=gpu:{gpus}")
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    return "\n".join(lines + ["set -euo pipefail", body, ""])


def write_slurm(profile: str, out_dir: str | Path | None = None, params_dir="params", runs_dir="runs",
                book_dir="book", notebooks_dir="notebooks", only=None, data_root: str | None = None,
                gpus: int = 1, cpus: int = 8, time: str = "04:00:00", partition: str | None = None) -> Path:
    """Write manifest.json, one ``wave<k>_<name>.sbatch`` per wave, book.sbatch and submit.sh into
    ``out_dir`` (default ``<runs>/<profile>/slurm``); return the submit script's path."""
    params = find_params_dir(params_dir)
    runs = resolve_path(runs_dir, params)
    books = resolve_path(book_dir, params)
    out = Path(out_dir) if out_dir else runs / profile / "slurm"
    pairs = plan(profile, params, runs, books, notebooks_dir, only)
    pending = [p for p in pairs if p.is_summary or not is_fresh(p)]
    named = waves(pending, replicates_of(pairs))   # further training seeds train in the first wave
    manifest: dict[str, Any] = {
        "profile": profile, "params_dir": str(params), "runs_dir": str(runs), "book_dir": str(books),
        "notebooks_dir": str(resolve_path(notebooks_dir, params)),
        "data_root": str(Path(data_root).expanduser().resolve()) if data_root else None,
        "waves": [{"name": kind, "pairs": [p.label for p in wave]} for kind, wave in named],
    }
    manifest_path = out / "manifest.json"
    atomic_write_json(manifest_path, manifest)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    mace = mace_command()
    cd = f"cd {shlex.quote(str(params.parent))}"
    submit = ["#!/bin/bash", "# Submit the study's job arrays in order (each waits for the previous to end).",
              "set -euo pipefail", f"cd {shlex.quote(str(out))}", "dep=''"]
    for k, (kind, wave) in enumerate(named):
        name = f"wave{k}_{kind}.sbatch"
        body = f"{cd}\n{mace} study exec --manifest {shlex.quote(str(manifest_path))} --wave {k} " \
               f"--index \"$SLURM_ARRAY_TASK_ID\""
        atomic_write_text(out / name, _sbatch(f"mace-{profile}-{kind}", body, logs, len(wave),
                                              gpus if kind != "summary" else 0, cpus, time, partition))
        submit.append(f"jid=$(sbatch --parsable $dep {name}); echo \"{name}: $jid\"; dep=\"--dependency=afterany:$jid\"")
    data = f" --data-root {shlex.quote(manifest['data_root'])}" if manifest["data_root"] else ""
    book_body = (f"{cd}\n{mace} study book --profile {shlex.quote(profile)} --params-dir {shlex.quote(str(params))} "
                 f"--runs-dir {shlex.quote(str(runs))} --book-dir {shlex.quote(str(books))}{data}")
    atomic_write_text(out / "book.sbatch", _sbatch(f"mace-{profile}-book", book_body, logs, None, 0, 2, "00:30:00",
                                                   partition))
    submit.append("jid=$(sbatch --parsable $dep book.sbatch); echo \"book.sbatch: $jid\"")
    submit_path = out / "submit.sh"
    atomic_write_text(submit_path, "\n".join(submit) + "\n")
    submit_path.chmod(0o755)
    return submit_path


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise MaceError(f"manifest {path} does not exist", "write it with `mace study run --slurm`")
    return json.loads(path.read_text())
