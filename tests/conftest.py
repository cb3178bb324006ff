"""Set-up shared by the test modules, built once per session (issue 21).

- ``tiny_root``: a small synthetic SYSU tree (and its image cache) for the trainer tests.
- ``ci_data``: the ci profile's synthetic dataset, generated once. ``data.root`` is part of a run key,
  so every test of the ci profile points ``MACE_DATA_ROOT`` at this one folder.
- ``ci_study``: ONE study on the ci profile (every notebook executed by papermill, the book built),
  trained once. Its content-hashed run cache (``runs/``) is what every ci-profile test reads.
- ``ci_runs_copy``: a private copy of that cache, for a test that adds runs or evaluations to it.

Shared folders are read, never written: a test that trains or executes notebooks works in a copy
(``ci_runs_copy``) or in its own ``tmp_path``. The one exception is test_e2e_book's second study run
on the shared folders, which must find everything up to date and only rebuilds the same book.

Order: slow tests (``@pytest.mark.slow``) run last, so a failing fast test shows within minutes; the
Makefile's ``test`` target runs the two groups as two pytest invocations, fast first.

Parallel (pytest-xdist, ``make test`` runs ``-n 2 --dist loadgroup``): a session fixture runs once per
worker, so the three above are built once across workers (``_built_once``: a file lock in the folder all
workers share; the first builds, the others wait and reuse its folder). Tests that share an expensive
module or session set-up stay on one worker through ``@pytest.mark.xdist_group`` (``ci_study``: every
test that reads the session's study; the Slurm and interrupt modules; ``_keep_xdist_groups`` writes the
group into the node id where pytest 9.2 reads it). The slow part starts the longest chains first
(``SLOW_FIRST``): while one worker builds the ci study and runs its readers, the other runs the
interrupted studies and the learning run, then the Slurm arrays (which need the ci study), so neither
normally waits on the other's lock.
"""
from __future__ import annotations

import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


# the slow part's longest chains, started first (xdist hands out groups in this order, a worker takes the
# next one when two of its tests are left): the session's ci study and the tests that read it (one
# worker), the interrupted studies (the other), the learning run (same worker, while the ci study is
# still being built), then the Slurm arrays, which start from the ci study (normally built by then)
SLOW_FIRST = ("ci_study", "interrupt", "learns", "slurm")


def _slow_rank(item) -> int:
    group = item.get_closest_marker("xdist_group")
    name = (group.args[0] if group.args else group.kwargs.get("name")) if group else None
    return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)


def _keep_xdist_groups(config, items) -> None:
    """``--dist loadgroup`` keeps together the tests whose node ids end in the same ``@<group>``, a suffix
    pytest-xdist adds on each worker by setting ``item._nodeid``. pytest 9.2 derives ``nodeid`` from
    ``item._id`` instead, so with pytest-xdist 3.8 the suffix is lost and every test becomes its own
    scope: the groups' tests spread over both workers (and wait there on the session fixtures' lock).
    Set the suffix the way pytest 9.2 reads it (a no-op where pytest-xdist's own suffix took)."""
    if not getattr(config.option, "loadgroup", False):
        return
    try:
        from _pytest.nodeid import NodeId   # pytest >= 9.2
    except ImportError:
        return
    for item in items:
        names = {str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                 for mark in item.iter_markers("xdist_group")}
        suffix = "@" + "_".join(sorted(names))
        if names and not item.nodeid.endswith(suffix) and isinstance(getattr(item, "_id", None), NodeId):
            item._id = NodeId.parse(item.nodeid + suffix)


def pytest_collection_modifyitems(config, items):
    """Fast tests first; among the slow ones the SLOW_FIRST groups first (the sort is stable: the order
    within each group is kept)."""
    _keep_xdist_groups(config, items)
    items.sort(key=lambda item: (item.get_closest_marker("slow") is not None,
                                 _slow_rank(item) if item.get_closest_marker("slow") else 0))


def _built_once(tmp_path_factory, name: str, build):
    """``build(folder)`` once per test run, whatever the number of xdist workers: its result is pickled next
    to the folder, which every worker reuses. Without xdist, a fresh ``mktemp`` folder as before."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return build(tmp_path_factory.mktemp(name))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent   # the base temp folder all workers share
    folder, done = shared / name, shared / f"{name}.pickle"
    with FileLock(str(shared / f"{name}.lock")):
        if done.is_file():
            return pickle.loads(done.read_bytes())
        if folder.exists():   # a build that failed on another worker: start over
            shutil.rmtree(folder)
        folder.mkdir()
        result = build(folder)
        tmp = done.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(result))
        tmp.replace(done)
        return result


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """One tiny synthetic dataset for every trainer test of the session (see _train_helpers)."""
    from _train_helpers import make_tiny_dataset

    return _built_once(tmp_path_factory, "train-data", make_tiny_dataset)


@pytest.fixture(scope="session")
def ci_data(tmp_path_factory) -> Path:
    """The ci profile's synthetic dataset (``runner.ensure_data``, once per session)."""
    from mace_core.study import runner
    from mace_core.study.variants import DATA_ROOT_ENV

    def build(folder: Path) -> Path:
        root = folder / "synthetic-ci"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(DATA_ROOT_ENV, str(root))
            mp.chdir(REPO)
            assert runner.ensure_data("ci", REPO / "params") == root
        return root

    return _built_once(tmp_path_factory, "ci-data", build)


@dataclass
class CiStudy:
    root: Path          # session folder holding runs/ and book/
    runs: Path          # the run cache (runs/ci/<key>/ ...)
    book: Path          # a copy of the repo's book/, with generated/ pages and _build/html
    data: Path          # = ci_data
    report: object      # runner.StudyReport of the study run
    kwargs: dict        # the run_study keywords, for a second run on the same folders

    def copy_runs(self, dest: Path) -> Path:
        """A private copy of the run cache (runs, their cached evaluations, the kernel spec)."""
        shutil.copytree(self.runs, dest, ignore=shutil.ignore_patterns(".locks"))
        return dest


@pytest.fixture(scope="session")
def ci_study(tmp_path_factory, ci_data) -> CiStudy:
    """The ci study, run once: two one-thread jobs (the Makefile's default on 2 cores). Its time counts
    towards the pytest-timeout of the first test that asks for it: those modules allow for it."""
    from mace_core.study import runner

    if not (REPO / "notebooks").is_dir() or not (REPO / "book" / "_config.yml").is_file():
        pytest.skip("notebooks/ or book/ missing")
    def build(root: Path) -> tuple:
        book = root / "book"
        shutil.copytree(REPO / "book", book, ignore=shutil.ignore_patterns("_build", "generated", "_toc.yml"))
        kwargs = dict(params_dir=REPO / "params", runs_dir=root / "runs", book_dir=book,
                      notebooks_dir=REPO / "notebooks", data_root=str(ci_data), progress=False, jobs=2)
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(REPO)
            report = runner.run_study("ci", **kwargs)
        return root, report, kwargs   # the report (a dataclass of lists and paths) travels pickled

    root, report, kwargs = _built_once(tmp_path_factory, "ci-study", build)
    return CiStudy(root, root / "runs", root / "book", ci_data, report, kwargs)


@pytest.fixture()
def ci_runs_copy(ci_study, tmp_path) -> Path:
    return ci_study.copy_runs(tmp_path / "runs")
