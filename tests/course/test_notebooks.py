"""Notebook hygiene: thin, parameterised, stripped, runnable headless and on Colab."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_notebooks_exist() -> None:
    assert NOTEBOOKS, "no notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_hygiene(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged 'parameters'"
    # Literal values only: papermill injects overrides after this cell, so nothing is derived here.
    for node in ast.parse(tagged[0].source).body:
        assert isinstance(node, ast.Assign), f"{path.name}: parameters cell holds {type(node)}"
        ast.literal_eval(node.value)
    params = {t.id for n in ast.parse(tagged[0].source).body for t in n.targets}
    assert {"PROFILE", "WORKDIR"} <= params
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs"), f"{path.name} has stored outputs"
            assert cell.get("execution_count") is None, f"{path.name} has execution counts"
        assert "colab" not in cell.get("metadata", {}), f"{path.name} carries Colab metadata"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "colab-badge" in first.source
    assert any("google.colab" in c.source for c in nb.cells if c.cell_type == "code")
    # Notebooks never read the repository checkout: no relative paths into the repo's folders.
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert "../" not in cell.source, f"{path.name} reads a repository-relative path"
