"""Issue 22, point 4: a result table reads well in JupyterLab, not only in the book.

JupyterLab's own stylesheet (the one nbconvert's ``lab`` template ships, the CSS of JupyterLab's
output area) lays a caption out above a table as narrow as its columns: a long caption became a
~150 px column. The table's own styles put the caption under the table, at the table's full width,
with the table at least a readable caption wide. Measured in headless Chromium.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from mace_core.analysis import tables
from mace_core.book.check import Browser, find_browser


def test_table_styles_travel_with_the_table():
    frame = pd.DataFrame({"variant": ["baseline"], "R1": ["42.3 ± 5.1"]})
    frame.attrs["caption"] = "A caption."
    html = tables.show(frame).to_html()
    assert "caption-side: bottom" in html and "min-width: min(100%, 36rem)" in html


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_caption_under_a_narrow_table_at_full_width_in_jupyterlab_css(tmp_path):
    exe = find_browser()
    if exe is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    from nbconvert import HTMLExporter
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    frame = pd.DataFrame({"variant": ["baseline", "fraction_50"], "R1": ["42.3 ± 5.1", "30.1 ± 2.0"],
                          "mAP": ["40.0 ± 1.0", "28.0 ± 1.1"]})
    frame.attrs["caption"] = ("SYSU-MM01 all-search, smoke profile: percent, mean ± std over training seeds (n per row), "
                              "final epoch; difference to the baseline with its 95 % interval.") * 2
    nb = new_notebook(cells=[new_code_cell("tables.show(frame)", outputs=[
        new_output("display_data", data={"text/html": tables.show(frame).to_html()})])])
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    page = tmp_path / "nb.html"
    page.write_text(body)
    probe = """JSON.stringify((() => { const t = document.querySelector('table.mace-table');
      const c = t.querySelector('caption').getBoundingClientRect(), b = t.querySelector('tbody').getBoundingClientRect();
      return {table: t.getBoundingClientRect().width, caption: c.width, below: c.top >= b.bottom - 1}; })())"""
    with Browser(exe) as browser:
        browser.open(page.as_uri(), 1024)
        m = json.loads(browser.call("Runtime.evaluate", expression=probe, returnByValue=True)["result"]["value"])
    assert m["below"], m                          # the caption under the table
    assert m["caption"] >= 500 and m["caption"] == pytest.approx(m["table"]), m   # 36rem = 576 px, not ~150-250
