"""The book check: machine-path scan of a built book, and the browser's overflow / wrap checks."""
from pathlib import Path

import pytest

from mace_core.errors import MaceError
from mace_core.book import check as bookcheck

PAGE = """<html><head><meta charset="utf-8"></head><body><main><article class="bd-article" style="max-width:600px">
<p>text</p><table class="mace-table"><tr><td>41.2 ± 1.0</td><td>{cell}</td></tr></table>{extra}
</article></main></body></html>"""


def _book(tmp_path: Path, **pages: str) -> Path:
    html = tmp_path / "_build" / "html"
    for name, text in {"index": PAGE.format(cell="ok", extra=""), **pages}.items():
        (html / f"{name}.html").parent.mkdir(parents=True, exist_ok=True)
        (html / f"{name}.html").write_text(text)
    (html / "_static").mkdir(exist_ok=True)
    (html / "_static" / "vendor.js").write_text("var p = '/home/builder/x';")   # third-party: not scanned
    return html


def test_machine_paths_name_the_project_root_and_temp_folders():
    needles = bookcheck.machine_paths(Path("/some/where"))
    assert "/some/where/" in needles and "/tmp/" in needles and "/home/" in needles and "/work/" in needles


def test_path_scan_finds_absolute_paths_in_pages_only(tmp_path):
    html = _book(tmp_path, **{"chapters/a": PAGE.format(cell="runs_dir = '/tmp/xyz/runs'", extra="")})
    leaks = bookcheck.find_path_leaks(html, ["/tmp/", "/home/"])
    assert len(leaks) == 1 and leaks[0].startswith("chapters/a.html: '/tmp/'")
    assert bookcheck.find_path_leaks(_book(tmp_path / "clean"), ["/tmp/", "/home/"]) == []
    with pytest.raises(MaceError, match="no built book"):
        bookcheck.check(tmp_path / "nothing", browser=False)


@pytest.mark.skipif(bookcheck.find_browser() is None,
                    reason="Chromium is not installed (apt-get install -y chromium): browser checks skipped")
def test_browser_flags_overflow_and_wrapping_and_saves_screenshots(tmp_path):
    wide = PAGE.format(cell="ok", extra="<pre style='overflow-x:auto'>" + "x" * 300 + "</pre>"
                       "<div style='width:1200px'>a fixed-width block</div>")
    wraps = PAGE.format(cell="<div style='width:40px;white-space:normal'>many words that must wrap here</div>", extra="")
    html = _book(tmp_path, **{"chapters/wide": wide, "generated/x/summary": wraps})
    problems = bookcheck.check(html, shots=tmp_path / "shots")
    assert any(p.startswith("chapters/wide.html @ 1024 px: document is") for p in problems)
    assert not any(p.startswith("chapters/wide.html @ 1400 px: document is") for p in problems)
    assert any("chapters/wide.html @ 1400 px: wider than the content column: pre" in p for p in problems)
    assert any("generated/x/summary.html @ 1400 px: cell wraps beyond 2 lines" in p for p in problems)
    assert not any(p.startswith("index.html") for p in problems)
    shots = sorted(p.name for p in (tmp_path / "shots").glob("*.png"))
    assert shots == ["chapters__wide.png", "generated__x__summary.png", "index.png"]


@pytest.mark.skipif(bookcheck.find_browser() is None,
                    reason="Chromium is not installed (apt-get install -y chromium): browser checks skipped")
def test_reopened_pages_are_measured_new_and_hung_or_broken_pages_are_errors(tmp_path, monkeypatch):
    import socket

    page = tmp_path / "p.html"
    page.write_text(PAGE.format(cell="ok", extra=""))
    broken = tmp_path / "broken.html"   # a script that makes the measurement itself throw
    broken.write_text(PAGE.format(cell="ok", extra="<script>window.getComputedStyle = () => "
                                                   "{ throw new Error('no styles here'); };</script>"))
    server = socket.socket()            # accepts the image request and never answers: the page never completes
    server.bind(("127.0.0.1", 0))
    server.listen()
    hung = tmp_path / "hung.html"
    hung.write_text(PAGE.format(cell="ok", extra=f"<img src='http://127.0.0.1:{server.getsockname()[1]}/x.png'>"))
    monkeypatch.setattr(bookcheck, "LOAD_TIMEOUT_S", 2)
    with bookcheck.Browser(bookcheck.find_browser()) as browser:
        def evaluate(expression):
            return browser.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

        browser.open(page.as_uri(), 1400)
        evaluate("window.seenBefore = true")
        browser.open(page.as_uri(), 1024)          # the same URL again, as the check does for its second width
        assert evaluate("window.seenBefore === undefined") is True and evaluate("window.innerWidth") == 1024
        assert browser.measure()["viewport"] <= 1024
        redirect = tmp_path / "index.html"      # the book's index.html is such a page
        redirect.write_text(f"<html><head><meta http-equiv='refresh' content='0; url={page.name}'></head></html>")
        browser.open(redirect.as_uri(), 1024)     # a redirect is a loaded page, not a hang
        browser.open(broken.as_uri(), 1024)
        with pytest.raises(MaceError, match="measurement failed in the browser: .*no styles here"):
            browser.measure()
        with pytest.raises(MaceError, match="did not load .*hung.html within 2 s"):
            browser.open(hung.as_uri(), 1024)
    server.close()


WIDE_BACKBONES = [("resnet50", "resnet18", [41.1, 47.8, 38.0]), ("seresnet50", "seresnet18", [60.0, 20.0]),
                  ("efficientnet_b3", "efficientnet_b0", [12.0, 55.0]), ("tresnet_m", "tresnet_m", [15.0, 19.0])]


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.skipif(bookcheck.find_browser() is None,
                    reason="Chromium is not installed (apt-get install -y chromium): browser checks skipped")
def test_a_summary_as_wide_as_the_smoke_backbones_fits_at_1024(tmp_path):
    """Issue 22, point 5: the smoke book's backbone summary had a 763 px table in a 755 px column at
    1024 px. A Jupyter Book page with the same four backbones and two-digit spreads (a table at least
    that wide when nothing wraps) passes the book check at 1400 and 1024 px."""
    import json
    import shutil

    import nbformat
    from _tables_helpers import seeded
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    from mace_core.analysis import tables
    from mace_core.book.build import build_book

    repo = Path(__file__).resolve().parents[1]
    book = tmp_path / "book"
    book.mkdir()
    shutil.copy(repo / "book" / "_config.yml", book)
    shutil.copytree(repo / "book" / "_static", book / "_static")
    (book / "intro.md").write_text("# Intro\n")
    runs = [r for name, bb, r1 in WIDE_BACKBONES for r in seeded(name, r1, model__backbone=bb)]
    cells = [new_markdown_cell("# Summary: backbones (Table 4)")]
    for frame in (tables.comparison_table("01_backbones", runs), tables.backbone_cost_table(runs),
                  tables.metrics_table("01_backbones", runs)):
        cells.append(new_code_cell("tables.show(frame)", metadata={"tags": ["remove-input"]}, outputs=[
            new_output("display_data", data={"text/html": tables.show(frame).to_html(), "text/plain": "table"})]))
    (book / "generated" / "01_backbones").mkdir(parents=True)
    nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                      "language": "python"}}),
                   book / "generated" / "01_backbones" / "summary.ipynb")
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n- file: generated/01_backbones/summary\n")
    build_book(book)
    html = book / "_build" / "html"
    page = html / "generated" / "01_backbones" / "summary.html"
    with bookcheck.Browser(bookcheck.find_browser()) as browser:   # the fixture is as wide as the smoke page
        browser.open(page.as_uri(), 1024)
        widths = json.loads(browser.call("Runtime.evaluate", returnByValue=True, expression=(
            "JSON.stringify([...document.querySelectorAll('table.mace-table')].map(t => {t.style.minWidth = '0';"
            " t.style.maxWidth = 'none'; t.style.width = 'max-content'; return t.getBoundingClientRect().width;}))"
        ))["result"]["value"])
    assert widths[0] >= 763, widths
    assert bookcheck.check(html, shots=tmp_path / "shots") == []
