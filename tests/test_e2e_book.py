"""End to end (issue 5, point 6): the ci profile executes every notebook once under papermill and
builds the book; each experiment's pages exist with a table and at least one figure. Then a second
study run executes nothing and only rebuilds the book.

The study is the session's ``ci_study`` (tests/conftest.py): temporary folders (a copy of book/, fresh
runs/ and a tiny synthetic dataset), so the user's book and runs are never touched.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from mace_core.book import check as bookcheck
from mace_core.study import runner
from mace_core.study.variants import list_experiments

REPO = Path(__file__).resolve().parents[1]
# the first test to ask for the session's ci study (conftest.py) also waits for it to run: its time counts
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800), pytest.mark.xdist_group("ci_study")]


def _pages(html_dir: Path, experiment: str) -> dict[str, str]:
    folder = html_dir / "generated" / experiment
    return {p.stem: p.read_text(errors="replace") for p in folder.glob("*.html")}


def test_ci_study_executes_every_notebook_and_builds_the_book(ci_study, monkeypatch):
    book, report = ci_study.book, ci_study.report   # the session's ci study (conftest.py), run once
    monkeypatch.chdir(REPO)
    assert report.ok, "\n".join(f"{f['label']}: {f['error']} ({f['notebook']})" for f in report.failed)
    assert report.index == book / "_build" / "html" / "index.html" and report.index.is_file()
    html = book / "_build" / "html"
    experiments = list_experiments(REPO / "params")
    assert len(experiments) == 7
    for experiment in experiments:
        assert (html / "chapters" / f"{experiment}.html").is_file(), experiment
        pages = _pages(html, experiment)
        assert "summary" in pages, f"{experiment}: no summary page"
        assert "<table" in pages["summary"], f"{experiment}: summary page has no table"
        assert any(re.search(r"<img\b", text) for text in pages.values()), f"{experiment}: no figure"
        # book/_config.yml's nb_output_stderr: no kernel's stderr (warnings, progress) on any page
        assert not any("output stderr" in text for text in pages.values()), f"{experiment}: stderr shown"
    # MathJax: only the one entry script Sphinx adds, never the whole vendored bundle on every page
    methods = (html / "methods.html").read_text()
    assert not re.search(r"<script[^>]*mathjax/(?!tex-chtml\.js)", methods), "extra MathJax bundles linked"
    assert not (book / "_static" / "mathjax").exists()
    runs_md = (book / "generated" / "runs.md").read_text()
    assert runs_md.count("\n| ") >= 15      # one row per distinct trained run (+ the package table)
    assert "runs.md" not in (html / "reproducibility.html").read_text() or "run key" in \
        (html / "reproducibility.html").read_text()

    # issue 10: the overview follows the intro; no machine path in the build; in a real browser no page
    # is wider than the window and no result cell wraps beyond two lines
    toc = (book / "_toc.yml").read_text()
    assert toc.index("generated/overview") < toc.index("methods")
    assert "Results at a glance" in (html / "generated" / "overview.html").read_text()
    leaks = bookcheck.find_path_leaks(html, bookcheck.machine_paths(REPO) + [str(ci_study.root), str(ci_study.data)])
    assert not leaks, "\n".join(leaks[:10])
    exe = bookcheck.find_browser()
    if exe is None:
        warnings.warn("Chromium is not installed: the browser checks of the ci book were skipped "
                      "(apt-get install -y chromium, or make book-check)")
    else:
        problems = bookcheck.browser_problems(html, exe, book / "_build" / "screenshots")
        assert not problems, "\n".join(problems[:20])

    # the second run, on the same folders: nothing to execute, the same book rebuilt
    again = runner.run_study("ci", **ci_study.kwargs)
    assert again.ok and again.executed == [] and again.index.is_file()
    assert len(again.skipped) == len(report.executed)
