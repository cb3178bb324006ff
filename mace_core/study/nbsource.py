"""What of a notebook's source is part of the study's identity of a page (the notebook hash).

A notebook's header (kernelspec, jupytext's text representation and version) and its ``parameters``
cell are not: JupyterLab's save rewrites the header, and the study runner passes every parameter the
notebook declares explicitly (:func:`mace_core.study.notebook.runner_parameters`), so a value a user
leaves in the parameters cell never reaches a study page. Every other cell counts: its type, source and
tags (``remove-input`` and the like change what the book shows).
"""
from __future__ import annotations

import json
from pathlib import Path

PARAMETERS_TAG = "parameters"


def notebook_identity(notebook: str | Path) -> bytes:
    """The cells of a jupytext notebook that define a study page, as canonical bytes."""
    import jupytext

    nb = jupytext.read(Path(notebook))
    cells = []
    for cell in nb.cells:
        tags = list(cell.metadata.get("tags", []))
        if PARAMETERS_TAG in tags:
            continue
        cells.append({"type": cell.cell_type, "source": cell.source, "tags": tags})
    return json.dumps(cells, sort_keys=True, ensure_ascii=False).encode()
