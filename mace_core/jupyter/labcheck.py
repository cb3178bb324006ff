"""`make lab-check`: JupyterLab of this environment in headless Chromium, with notebooks/00_baseline.py
open (as a notebook, through jupytext), saved as a screenshot: what a user sees after `make lab`.

    python -m mace_core.jupyter.labcheck [--install] [--out runs/lab-check/jupyterlab.png]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mace_core.book import check as bookcheck
from mace_core.errors import MaceError
from mace_core.jupyter.kernel import install_kernel
from mace_core.jupyter.lab import LabServer, lab_settings

_CELLS = "document.querySelectorAll('.jp-Notebook .jp-Cell').length"
STEADY_S = 1.5


def screenshot(root: Path, out: Path, exe: str, notebook: str = "notebooks/00_baseline.py", wait: float = 60) -> int:
    """Open ``notebook`` in JupyterLab, wait for its cells, save ``out``; returns the number of cells shown."""
    install_kernel(prefix=sys.prefix)
    lab_settings(sys.prefix)
    with LabServer(root) as server, bookcheck.Browser(exe) as browser:
        browser.open(f"{server.url}/lab/tree/{notebook}?token={server.token}", 1400, 900)
        # JupyterLab renders a notebook's cells a few at a time: wait until some are shown and their
        # number has held for STEADY_S (the first poll after the page loads may see only one)
        deadline, cells, steady_since = time.time() + wait, 0, None
        while time.time() < deadline:
            now = browser.call("Runtime.evaluate", expression=_CELLS, returnByValue=True)["result"]["value"]
            if now != cells:
                cells, steady_since = now, time.time()
            elif cells and time.time() - steady_since >= STEADY_S:
                break
            time.sleep(0.25)
        time.sleep(2)   # the kernel badge and syntax highlighting settle
        browser.screenshot(out, 1400, max_height=900)
    return int(cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="install Debian's chromium when missing (root)")
    parser.add_argument("--out", default="runs/lab-check/jupyterlab.png")
    args = parser.parse_args(argv)
    exe = bookcheck.find_browser() or (bookcheck.install_browser() if args.install else None)
    if exe is None:
        print("lab-check skipped: Chromium is not installed (apt-get install -y chromium, or make lab-check as root)")
        return 0
    root = Path.cwd()
    try:
        cells = screenshot(root, root / args.out, exe)
    except MaceError as exc:
        print(f"lab-check: error: {exc}", file=sys.stderr)
        return 2
    if not cells:
        print(f"lab-check: notebooks/00_baseline.py did not open as a notebook (no cells); see {args.out}", file=sys.stderr)
        return 1
    print(f"JupyterLab showed notebooks/00_baseline.py as a notebook of {cells} cells: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
