"""The project's Jupyter kernel, ``mace-study``: the one name the notebooks' headers, the study's
papermill runs and JupyterLab use, always this interpreter (the environment ``mace_core`` is installed in).

* :func:`install_kernel` registers it in a Jupyter data folder (``mace kernel install``; on a JupyterHub
  the user does not own, ``--user`` puts it in the user's own folder, so the notebooks open with it).
* :func:`kernel_dir` writes the study's private kernelspec under ``<runs>/.jupyter`` (papermill's).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from mace_core.errors import MaceError
from mace_core.utils.atomic import atomic_write_text

KERNEL_NAME = "mace-study"
DISPLAY_NAME = "Python (mace-study)"


def install_kernel(user: bool = True, prefix: str | None = None, name: str = KERNEL_NAME,
                   display_name: str = DISPLAY_NAME) -> Path:
    """Register the kernel (``user``: the user's data folder; ``prefix``: e.g. ``sys.prefix``); returns
    the kernelspec folder. Re-running replaces it (e.g. after moving the environment)."""
    try:
        from ipykernel.kernelspec import install
    except ImportError:  # pragma: no cover - ipykernel is a dependency
        raise MaceError("ipykernel is not installed in this environment", "pip install -e . (it is a dependency)") from None
    try:
        path = install(user=user and prefix is None, prefix=prefix, kernel_name=name, display_name=display_name)
    except OSError as exc:
        raise MaceError(f"could not write the kernelspec {name} ({exc})",
                        "use --user (your own Jupyter folder) or --prefix PATH where you can write") from None
    return Path(path)


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
            "display_name": DISPLAY_NAME, "language": "python"}
    path = root / "kernels" / KERNEL_NAME / "kernel.json"
    if not path.is_file() or json.loads(path.read_text()) != spec:
        atomic_write_text(path, json.dumps(spec, indent=1))
    return root
