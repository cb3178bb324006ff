"""Issue 22, points 2 and 3: a JupyterLab save of an unedited notebook changes nothing tracked, and
neither the notebook's header nor its parameters cell is part of a study page's identity.

The server test saves every notebook through a real Jupyter server's contents API (JupyterLab's
autosave does the same PUT) in a git copy of the project's notebooks, then checks ``git diff`` and
the study's stamps (what ``mace study list`` compares: "up to date" or "to run").
"""
from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

from mace_core.study import planning as runner
from mace_core.study.notebook import runner_parameters
from mace_core.study.variants import list_experiments

REPO = Path(__file__).resolve().parents[1]


def _parameters_cell_names(path: Path) -> list[str]:
    import jupytext

    nb = jupytext.read(path)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return [t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign) for t in node.targets]


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    shutil.copy(REPO / "jupytext.toml", tmp_path / "jupytext.toml")
    return tmp_path


def test_hash_ignores_header_and_parameters_cell_but_not_other_cells(tmp_path):
    nb = _copy(tmp_path) / "notebooks" / "05_data_efficiency.py"
    before = runner.notebook_hash(nb)
    text = nb.read_text()
    nb.write_text(text.replace("#       format_version: '1.3'\n",
                               "#       format_version: '1.3'\n#       jupytext_version: 1.19.7\n", 1))
    assert nb.read_text() != text and runner.notebook_hash(nb) == before
    nb.write_text(text.replace("fraction = None ", "fraction = 0.4  ", 1))
    assert "fraction = 0.4" in nb.read_text() and runner.notebook_hash(nb) == before
    nb.write_text(text.replace("## Training curves", "## Curves of training", 1))
    assert runner.notebook_hash(nb) != before
    retagged = text.replace('# %% tags=["remove-input"]', '# %% tags=["remove-output"]', 1)
    assert retagged != text
    nb.write_text(retagged)
    assert runner.notebook_hash(nb) != before, "a cell's tags change what the book shows"


def test_runner_passes_every_parameter_a_notebook_declares():
    pairs = runner.plan("smoke", REPO / "params", "runs", "book", REPO / "notebooks")
    seen = set()
    for pair in pairs:
        declared = _parameters_cell_names(pair.notebook)
        assert sorted(pair.parameters) == sorted(declared), pair.label
        if not pair.is_summary:
            seen.add(pair.experiment)
            canonical = runner_parameters(pair.experiment, REPO / "params")
            assert {k: pair.parameters[k] for k in canonical} == canonical
            assert pair.parameters["seed"] is None and pair.parameters["overrides"] == {}
    assert seen == set(list_experiments(REPO / "params")) and len(seen) >= 7


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_jupyterlab_save_changes_nothing_tracked(tmp_path):
    from mace_core.jupyter.lab import LabServer

    root = _copy(tmp_path)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t", "-C", str(root)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "notebooks"], check=True)
    names = sorted(p.name for p in (root / "notebooks").glob("*.py"))
    stamps = {p.label: p.stamp for p in runner.plan("smoke", REPO / "params", "runs", "book", root / "notebooks")}
    with LabServer(root) as server:
        for name in names:   # what JupyterLab's autosave sends: the notebook model, back unchanged
            model = server.request(f"/api/contents/notebooks/{name}?type=notebook&content=1")
            assert model["type"] == "notebook"
            server.request(f"/api/contents/notebooks/{name}", "PUT",
                           {"type": "notebook", "format": "json", "content": model["content"]})
        diff = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True, check=True).stdout
        assert diff == "", f"a save without edits changed tracked files:\n{diff}"
        after = {p.label: p.stamp for p in runner.plan("smoke", REPO / "params", "runs", "book", root / "notebooks")}
        assert after == stamps   # `mace study list`: no page goes from "up to date" to "to run"

        # a user's edit of the parameters cell is saved, but no study page changes
        name = "05_data_efficiency.py"
        model = server.request(f"/api/contents/notebooks/{name}?type=notebook&content=1")
        cell = next(c for c in model["content"]["cells"] if "parameters" in c["metadata"].get("tags", []))
        cell["source"] = cell["source"].replace("fraction = None ", "fraction = 0.4  ")
        server.request(f"/api/contents/notebooks/{name}", "PUT",
                       {"type": "notebook", "format": "json", "content": model["content"]})
    assert "fraction = 0.4" in (root / "notebooks" / name).read_text()
    assert {p.label: p.stamp for p in runner.plan("smoke", REPO / "params", "runs", "book", root / "notebooks")} == stamps
