"""`mace kernel install` and `mace lab`: the project's Jupyter kernel, and JupyterLab on the project with
the jupytext notebooks opening as notebooks (README: "Working interactively")."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from mace_core.jupyter.kernel import KERNEL_NAME


def register(subparsers) -> None:
    kernel = subparsers.add_parser("kernel", help=f"register the project's Jupyter kernel ({KERNEL_NAME})")
    sub = kernel.add_subparsers(dest="kernel_command", metavar="ACTION")
    sub.required = True
    install = sub.add_parser("install", help=f"register kernel '{KERNEL_NAME}' (this environment's Python) for Jupyter")
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", default=True,
                       help="in your own Jupyter data folder (default; right on a JupyterHub you do not own)")
    where.add_argument("--sys-prefix", action="store_true", help="inside this environment (what `make lab` uses)")
    where.add_argument("--prefix", default=None, help="under PREFIX/share/jupyter/kernels")
    install.add_argument("--name", default=None, help=f"kernel name (default {KERNEL_NAME}, which the notebooks name)")
    install.set_defaults(func=cmd_kernel_install)

    lab = subparsers.add_parser("lab", help="JupyterLab on the project; notebooks/*.py open as notebooks")
    lab.add_argument("--no-browser", action="store_true", help="print the address instead of opening a browser")
    lab.add_argument("--port", type=int, default=None)
    lab.set_defaults(func=cmd_lab)


def cmd_kernel_install(args) -> int:
    from mace_core.jupyter.kernel import DISPLAY_NAME, install_kernel

    prefix = sys.prefix if args.sys_prefix else args.prefix
    path = install_kernel(user=prefix is None, prefix=prefix, name=args.name or KERNEL_NAME,
                          display_name=DISPLAY_NAME if not args.name else f"Python ({args.name})")
    print(f"kernel {args.name or KERNEL_NAME} installed in {path}")
    print("the notebooks in notebooks/ name this kernel: open one (right-click > Open With > Notebook on a hub "
          "that does not open .py files as notebooks) and it starts with this environment's Python")
    return 0


def cmd_lab(args) -> int:
    from mace_core.jupyter.kernel import install_kernel
    from mace_core.jupyter.lab import lab_command, lab_settings
    from mace_core.study.variants import find_params_dir

    root = find_params_dir("params").parent
    install_kernel(prefix=sys.prefix)
    lab_settings(sys.prefix)
    extra = ["--no-browser"] if args.no_browser else []
    extra += [f"--port={args.port}"] if args.port else []
    extra += ["--LabApp.default_url=/lab/tree/notebooks"]
    cmd = lab_command(root, extra)
    print("JupyterLab on", Path(os.path.relpath(root)).as_posix() or ".", "- notebooks/*.py open as notebooks")
    os.execv(cmd[0], cmd)
    return 0  # pragma: no cover - execv does not return
