"""Assets the book needs but does not commit: an offline copy of MathJax 3.

The book's ``_config.yml`` points Sphinx's ``mathjax_path`` at ``_static/mathjax/tex-chtml.js``.
:func:`vendor_mathjax` fills the *built* book's ``_build/html/_static/mathjax`` after the build,
from the npm package ``mathjax@3`` (its ``es5/`` folder), keeping one copy per user in
``~/.cache/mace-study`` so later builds (and temporary book copies in tests) need neither npm nor
the network. It must not sit in the source ``book/_static``: Jupyter Book adds every ``*.js``
found there to every page, which would load all ~70 MathJax bundles (conflicting builds) at once.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from mace_core.errors import MaceError

PACKAGE = "mathjax@3"
ENTRY = "tex-chtml.js"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mace-study" / "mathjax3-es5"


def _fetch_to_cache(target: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise MaceError("npm is not available, so the book's offline MathJax copy cannot be fetched",
                        f"install Node.js (npm), or unpack the {PACKAGE} package's es5/ folder into {target}")
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([npm, "pack", PACKAGE, "--silent"], cwd=tmp, capture_output=True, text=True, timeout=300)
        tarballs = list(Path(tmp).glob("mathjax-*.tgz"))
        if proc.returncode != 0 or not tarballs:
            raise MaceError(f"`npm pack {PACKAGE}` failed: {(proc.stderr or proc.stdout).strip()[-300:]}",
                            f"check npm's registry access, or unpack the {PACKAGE} es5/ folder into {target}")
        staging = Path(tmp) / "es5"
        with tarfile.open(tarballs[0]) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/es5/") and (m.isfile() or m.isdir())]
            for member in members:
                member.name = member.name[len("package/es5/"):]
            tar.extractall(staging, members=[m for m in members if m.name], filter="data")
        if not (staging / ENTRY).is_file():
            raise MaceError(f"the {PACKAGE} package has no es5/{ENTRY}", "pin a MathJax 3 release that ships es5/")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".mathjax-", dir=target.parent))
        shutil.copytree(staging, partial, dirs_exist_ok=True)
        os.replace(partial, target)  # the cache is complete or absent, never half-copied


def remove_source_copy(book_dir: str | Path) -> None:
    """Drop a MathJax copy left in the source ``_static`` by older versions (see the module docstring)."""
    shutil.rmtree(Path(book_dir) / "_static" / "mathjax", ignore_errors=True)


def vendor_mathjax(book_dir: str | Path, strict: bool = False) -> Path | None:
    """Ensure ``<book>/_build/html/_static/mathjax/tex-chtml.js`` exists; return its folder.

    Without npm (and no cached copy) this prints why and returns None unless ``strict``: the book
    is still complete, its equations then show as TeX source.
    """
    dest = Path(book_dir) / "_build" / "html" / "_static" / "mathjax"
    if (dest / ENTRY).is_file():
        return dest
    cached = cache_dir()
    try:
        if not (cached / ENTRY).is_file():
            _fetch_to_cache(cached)
    except MaceError as exc:
        if strict:
            raise
        print(f"warning: {exc} (the book builds without rendered math)")
        return None
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".mathjax-", dir=dest.parent))
    shutil.copytree(cached, partial, dirs_exist_ok=True)
    if dest.exists():
        shutil.rmtree(dest)
    shutil.move(str(partial), dest)
    return dest


if __name__ == "__main__":
    import sys

    print(vendor_mathjax(sys.argv[1] if len(sys.argv) > 1 else "book", strict=True))
