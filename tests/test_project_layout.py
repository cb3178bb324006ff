"""The install entry points (a thin environment.yml, pyproject naming the package and script) and the
package's one-way architecture (no import inside mace_core points upward)."""
from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_is_thin_and_installs_the_project():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert any(str(d).replace(" ", "").startswith("python=3.11") for d in deps if isinstance(d, str))
    assert "pip" in deps
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1
    assert any(line.split()[0] == "-e" and line.split()[-1].startswith(".") for line in pip_sections[0]), pip_sections
    # dependencies are declared once, in pyproject: conda lists nothing beyond python and pip
    assert {d.split("=")[0] for d in deps if isinstance(d, str)} == {"python", "pip"}


def test_pyproject_names_the_package_and_the_console_script():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["mace"] == "mace_core.cli:main"
    assert "mace_core*" in meta["tool"]["setuptools"]["packages"]["find"]["include"]
    assert (ROOT / "mace_core" / "__init__.py").is_file()
    deps = " ".join(meta["project"]["dependencies"])
    assert "torch>=2.4" in deps and "torchvision>=0.19" in deps
    assert "test" in meta["project"]["optional-dependencies"]


def test_environment_pip_section_resolves(tmp_path):
    """pip resolves the environment's pip part against this interpreter (conda itself is not here)."""
    import json
    import shlex
    import subprocess
    import sys

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    (lines,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    args = [arg for line in lines for arg in shlex.split(line)]
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    names = {item["metadata"]["name"] for item in json.loads(report.read_text())["install"]}
    assert "mace-study" in names


MAX_MODULE_LINES = 520   # issue 21: no module over about 500 lines, each split by what it holds


def test_no_module_outgrows_one_purpose():
    """Modules stay small enough to hold one thing: every module of mace_core."""
    too_long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / "mace_core").rglob("*.py"))
                if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not too_long, f"split these by what they hold: {too_long}"


PACKAGE = ROOT / "mace_core"

# The one-way architecture: every import inside mace_core points down (or across) this order, never
# up; a new room of mace_core must be given its rank here before it can be imported.
# data → models → losses → engine → analysis → book → jupyter → study → cli; the same rank may import
# each other (e.g. rerank uses metrics). `book` (build, browser check) and `jupyter` (kernel, Lab) sit
# below `study`, which calls them; `jupyter`'s Lab check drives the book check's browser.
RANK = {
    "__init__": 0, "errors": 0, "utils": 0,
    "config": 1,
    "data": 2, "metrics": 2, "occlusion": 2, "rerank": 2,
    "models": 3,
    "losses": 4,
    "engine": 5,
    "analysis": 6,
    "book": 7,
    "jupyter": 8,
    "study": 9,
    "cli": 10,
}


def room_of(module: str) -> str:
    """``mace_core.study.runner`` -> ``study``; ``mace_core.losses`` -> ``losses``; ``mace_core`` -> ``__init__``."""
    parts = module.split(".")
    assert parts[0] == "mace_core", module
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """``(line, module)`` for every import of mace_core in ``source`` (top level or inside functions);
    relative imports resolved against ``module``; ``from mace_core import x`` counts as ``mace_core.x``."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "mace_core"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "mace_core":
                continue
            if target == "mace_core":
                out += [(node.lineno, f"mace_core.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, target))
    return out


def upward_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """What ``module`` imports from a room ranked above its own, as ``line: importer -> imported``."""
    own = RANK[room_of(module)]
    return [f"{line}: {module} -> {target}" for line, target in imported_modules(source, module, is_package)
            if RANK.get(room_of(target), -1) > own]


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_room_of_the_package_has_a_rank():
    rooms = {room_of(module_name(p)) if p.name != "__init__.py" or p.parent != PACKAGE else "__init__"
             for p in _modules()}
    assert rooms - RANK.keys() == set(), "give the new room its place in RANK (and on the architecture page)"
    assert {"book", "jupyter", "study", "cli"} <= rooms


def test_no_module_imports_upward():
    problems = []
    for path in _modules():
        module = module_name(path)
        problems += upward_imports(path.read_text(), module, path.name == "__init__.py")
    assert problems == [], "imports against data → models → losses → engine → analysis → book → jupyter → " \
                           "study → cli:\n" + "\n".join(problems)


@pytest.mark.parametrize("source, module, found", [
    ("from mace_core.study import api\n", "mace_core.engine.train", ["1: mace_core.engine.train -> mace_core.study"]),
    ("def f():\n    import mace_core.cli.study\n", "mace_core.book.build",
     ["2: mace_core.book.build -> mace_core.cli.study"]),
    ("from mace_core import losses\n", "mace_core.models.mace", ["1: mace_core.models.mace -> mace_core.losses"]),
    ("from ..study import registry\n", "mace_core.jupyter.kernel", ["1: mace_core.jupyter.kernel -> mace_core.study"]),
    ("from . import registry\n", "mace_core.study", []),   # a package's own module
    ("from mace_core.engine import train\nfrom mace_core.book.build import GENERATED\nimport numpy\n",
     "mace_core.study.runner", []),
    ("from mace_core.metrics import evaluate_sysu\n", "mace_core.rerank", []),   # the same rank
])
def test_the_check_finds_upward_imports(source, module, found):
    """Hand-written cases: the check above is only worth something if it sees each kind of import."""
    assert upward_imports(source, module, is_package=module == "mace_core.study") == found


def test_the_kernel_name_is_defined_once():
    """One module assigns the kernel's name; the study, the CLI and the Lab code import it."""
    owners = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Constant) \
                    and node.value.value == "mace-study":
                owners.append(path.relative_to(PACKAGE).as_posix())
    assert owners == ["jupyter/kernel.py"]
