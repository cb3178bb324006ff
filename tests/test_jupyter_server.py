"""Issue 13, point 6: the notebooks through a real Jupyter server of the project's environment.

The server (JupyterLab's, with jupytext's contents manager) hands notebooks/00_baseline.py out as a
notebook; a kernel the server starts executes its cells on the ci profile, and the outputs hold the
run's metrics. Where Chromium is installed, JupyterLab itself is opened on that notebook and
screenshotted (`make lab-check` does the same by hand).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from mace_core.book import check as bookcheck
from mace_core.jupyter import labcheck
from mace_core.jupyter.kernel import KERNEL_NAME, kernel_dir
from mace_core.jupyter.lab import LabServer
from mace_core.study import registry
from mace_core.study.variants import DATA_ROOT_ENV

REPO = Path(__file__).resolve().parents[1]
# the first test to ask for the session's ci study (conftest.py) also waits for it to run: its time counts
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _complete(runs: Path) -> set[str]:
    return {p.name for p in (runs / "ci").iterdir() if registry.is_complete(p)}


@pytest.mark.xdist_group("ci_study")
def test_server_serves_the_jupytext_notebook_and_its_kernel_runs_it(ci_study, ci_runs_copy, monkeypatch):
    """On a copy of the session's ci run cache: the kernel shows the study's baseline run, unretrained."""
    runs = ci_runs_copy
    cached = _complete(runs)
    monkeypatch.setenv(DATA_ROOT_ENV, str(ci_study.data))
    monkeypatch.chdir(REPO)
    env = {DATA_ROOT_ENV: str(ci_study.data), "JUPYTER_PATH": str(kernel_dir(runs))}
    with LabServer(REPO, env) as server:
        model = server.request("/api/contents/notebooks/00_baseline.py?type=notebook&content=1")
        assert model["type"] == "notebook", model["type"]
        cells = model["content"]["cells"]
        assert model["content"]["metadata"]["kernelspec"]["name"] == KERNEL_NAME
        assert any("parameters" in c["metadata"].get("tags", []) for c in cells)
        assert KERNEL_NAME in server.request("/api/kernelspecs")["kernelspecs"]

        kernel = server.request("/api/kernels", "POST", {"name": KERNEL_NAME})
        try:
            outputs = []
            for cell in cells:
                if cell["cell_type"] != "code":
                    continue
                outputs += server.execute(kernel["id"], cell["source"])
                if "parameters" in cell["metadata"].get("tags", []):
                    # what a user does in JupyterLab: edit the parameters before Run All
                    outputs += server.execute(kernel["id"], f'profile = "ci"\nruns_dir = {str(runs)!r}')
        finally:
            server.request(f"/api/kernels/{kernel['id']}", "DELETE")
    errors = [o for o in outputs if o["type"] == "error"]
    assert not errors, errors[0]["evalue"]
    assert _complete(runs) == cached, "the kernel retrained a run the study's cache holds"
    text = "\n".join(o.get("text", "") + json.dumps(o.get("data", {})) for o in outputs)
    shown = [name for name in cached if f"run: {name}" in text]
    assert len(shown) == 1, shown   # one run: the baseline's first seed
    run_dir = runs / "ci" / shown[0]
    assert "00_baseline/baseline" in json.loads((run_dir / registry.RECORD).read_text())["used_by"]
    results = json.loads((run_dir / registry.RESULTS).read_text())
    mean = results["metrics"]["mean"]
    for key in ("rank1", "mAP"):   # the metrics table shows the run's numbers (in %, one decimal)
        assert f"{100 * mean[key]:.1f}" in text, f"the metrics table does not show the run's {key}"
    assert "image/png" in text, "no training-curves figure"


def test_jupyterlab_opens_the_notebook_in_a_browser(tmp_path):
    exe = bookcheck.find_browser()
    if exe is None:
        warnings.warn("Chromium is not installed: JupyterLab was not opened in a browser (apt-get install -y "
                      "chromium, or make lab-check)")
        pytest.skip("Chromium is not installed")
    shot = tmp_path / "lab.png"
    cells = labcheck.screenshot(REPO, shot, exe)
    assert cells >= 5, "notebooks/00_baseline.py did not open as a notebook"
    assert shot.stat().st_size > 10_000
