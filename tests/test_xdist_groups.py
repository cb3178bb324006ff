"""``make test`` runs ``-n 2 --dist loadgroup``: the tests of one ``xdist_group`` must share a worker, or
the session's expensive set-up is waited for on the other worker (issue 21). tests/conftest.py puts the
group suffix where the installed pytest reads a node id; this runs that hook in a small suite."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CONFTEST = f'''
import importlib.util
import sys

spec = importlib.util.spec_from_file_location("mace_tests_conftest", {str(REPO / "tests" / "conftest.py")!r})
project = sys.modules["mace_tests_conftest"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(project)
pytest_collection_modifyitems = project.pytest_collection_modifyitems   # the project's hook, as make test runs it
'''

TESTS = '''
import os
import pytest

def _record(name):
    with open("workers.txt", "a") as f:
        f.write(f"{name} {os.environ['PYTEST_XDIST_WORKER']}\\n")

@pytest.mark.xdist_group("shared")
@pytest.mark.parametrize("case", ["a", "b"])
def test_grouped(case):
    _record(f"grouped-{case}")

@pytest.mark.xdist_group("shared")
def test_grouped_too():
    _record("grouped-c")

def test_alone_1():
    _record("alone-1")

def test_alone_2():
    _record("alone-2")
'''


def test_loadgroup_keeps_each_group_on_one_worker(tmp_path):
    pytest.importorskip("xdist")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_groups.py").write_text(TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
                           "--dist", "loadgroup", "--no-loadscope-reorder", "-rA"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    workers = dict(line.split() for line in (tmp_path / "workers.txt").read_text().splitlines())
    assert len(workers) == 5, workers
    grouped = {workers[f"grouped-{c}"] for c in "abc"}
    assert len(grouped) == 1, f"the group's tests ran on {sorted(grouped)}"
    # the suffix is the group name after the test's own id (parameters included), as pytest-xdist writes it
    assert "test_groups.py::test_grouped[a]@shared" in proc.stdout, proc.stdout
    # and the other tests go to the other worker meanwhile
    assert {workers["alone-1"], workers["alone-2"]} - grouped, workers
