"""Working interactively: the project's Jupyter kernel and JupyterLab opening the jupytext notebooks.

* :func:`install_kernel` registers a kernelspec named ``mace-study`` that starts this interpreter (the
  environment ``mace_core`` is installed in). On a JupyterHub the user does not own, ``--user`` puts it
  in the user's own Jupyter data folder; the notebooks' headers name this kernel, so they open with it.
* :func:`lab_settings` makes JupyterLab (of this environment) open ``.py`` files with jupytext's
  notebook view by default (the ``defaultViewers`` setting of the document manager, written as an
  application-level override, so the user's own settings stay theirs).
* :func:`lab_command` is the command line that ``make lab`` / ``mace lab`` runs.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from mace_core.errors import MaceError
from mace_core.utils.atomic import atomic_write_text

KERNEL_NAME = "mace-study"
DISPLAY_NAME = "Python (mace-study)"
_VIEWER_PLUGIN = "@jupyterlab/docmanager-extension:plugin"
_JUPYTEXT_VIEWER = "Jupytext Notebook"   # the widget factory jupytext's JupyterLab extension registers


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


def lab_settings(prefix: str | Path = sys.prefix) -> Path:
    """Write the application-level JupyterLab override that opens ``.py`` files as notebooks."""
    path = Path(prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    data = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text() or "{}")
        except json.JSONDecodeError:
            raise MaceError(f"{path} is not valid JSON", "fix or delete it, then run again") from None
    viewers = data.setdefault(_VIEWER_PLUGIN, {}).setdefault("defaultViewers", {})
    if viewers.get("python") != _JUPYTEXT_VIEWER:
        viewers["python"] = _JUPYTEXT_VIEWER
        atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


def lab_command(root: Path, extra: list[str] = ()) -> list[str]:
    """``jupyter lab`` on the project folder, opening the notebooks folder."""
    return [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", *extra]
