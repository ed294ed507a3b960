"""Every notebook runs top to bottom (small settings, offline, in a temporary folder)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, isolated):
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(isolated)}}).execute()
    text = "\n".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []))
    if path.stem == "02_hello":
        assert "rnn: loss" in text and "spells 'hello'" in text
    assert not any(o.get("output_type") == "error" for c in notebook.cells for o in c.get("outputs", []))


def test_notebooks_are_committed_without_outputs():
    assert len(NOTEBOOKS) == 4
    for path in NOTEBOOKS:
        cells = nbformat.read(path, as_version=4).cells
        assert all(not c.get("outputs") for c in cells if c.cell_type == "code"), path.name
