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
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    """Fast tests first (the sort is stable: the order within each group is kept)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """One tiny synthetic dataset for every trainer test of the session (see _train_helpers)."""
    from _train_helpers import make_tiny_dataset

    return make_tiny_dataset(tmp_path_factory.mktemp("train-data"))


@pytest.fixture(scope="session")
def ci_data(tmp_path_factory) -> Path:
    """The ci profile's synthetic dataset (``runner.ensure_data``, once per session)."""
    from mace_core.study import runner
    from mace_core.study.variants import DATA_ROOT_ENV

    root = tmp_path_factory.mktemp("ci-data") / "synthetic-ci"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(DATA_ROOT_ENV, str(root))
        mp.chdir(REPO)
        assert runner.ensure_data("ci", REPO / "params") == root
    return root


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
    root = tmp_path_factory.mktemp("ci-study")
    book = root / "book"
    shutil.copytree(REPO / "book", book, ignore=shutil.ignore_patterns("_build", "generated", "_toc.yml"))
    kwargs = dict(params_dir=REPO / "params", runs_dir=root / "runs", book_dir=book,
                  notebooks_dir=REPO / "notebooks", data_root=str(ci_data), progress=False, jobs=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        report = runner.run_study("ci", **kwargs)
    return CiStudy(root, root / "runs", book, ci_data, report, kwargs)


@pytest.fixture()
def ci_runs_copy(ci_study, tmp_path) -> Path:
    return ci_study.copy_runs(tmp_path / "runs")
