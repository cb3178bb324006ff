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
