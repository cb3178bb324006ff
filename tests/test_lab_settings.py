"""Issue 22, point 5: the project's JupyterLab settings: .py files open as notebooks, no news pop-up."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from mace_core.jupyter.lab import lab_settings


def test_overrides_open_notebooks_and_silence_the_news(tmp_path):
    path = lab_settings(tmp_path)
    data = json.loads(path.read_text())
    assert data["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["python"] == "Jupytext Notebook"
    notes = data["@jupyterlab/apputils-extension:notification"]
    assert notes == {"fetchNews": "false", "checkForUpdates": False}
    # the values are the ones the installed JupyterLab's schema names ("false" = Never)
    schema = Path(sys.prefix) / "share/jupyter/lab/schemas/@jupyterlab/apputils-extension/notification.json"
    props = json.loads(schema.read_text())["properties"]
    assert "false" in [o["const"] for o in props["fetchNews"]["oneOf"]] and props["checkForUpdates"]["type"] == "boolean"
    # a user's other overrides stay; rewriting changes nothing
    data["@jupyterlab/apputils-extension:themes"] = {"theme": "JupyterLab Dark"}
    path.write_text(json.dumps(data))
    mtime = path.stat().st_mtime_ns
    assert json.loads(lab_settings(tmp_path).read_text())["@jupyterlab/apputils-extension:themes"]["theme"] == "JupyterLab Dark"
    assert path.stat().st_mtime_ns == mtime
