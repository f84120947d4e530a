"""Write a course notebook with the standard opening cells (a dev tool, not part of the package).

Every notebook starts the same way (DESIGN.md): a title with the Colab badge, a guarded install
cell that runs only on Colab, the ``parameters`` cell (literal values only), then a set-up cell
that checks the GPU and resolves the profile. Authors pass the chapter's own cells:

    from tools.nbscaffold import md, code, write_notebook
    write_notebook("notebooks/02_svd_decomposition.ipynb", "SVD decomposition", "intro…",
                   [md("## …"), code("…")], parameters={"SEED": 0})

``tests/course/test_notebooks.py`` checks that every notebook keeps this shape.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

REPO_URL = "https://github.com/svdinst/svdinst"
PACKAGE_VERSION = "0.2.0"  # the svdinst version the notebooks are written for (minGPT lesson)

INSTALL = f"""# Colab only: install the kit. A plain (non-editable) install is importable without a restart.
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("google.colab") is not None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q",
         "svdinst[notebooks] @ git+{REPO_URL}@v{PACKAGE_VERSION}"],
        check=True,
    )"""


def md(text: str) -> nbformat.NotebookNode:
    """A markdown cell."""
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text: str, tags: list[str] | None = None) -> nbformat.NotebookNode:
    """A code cell with no outputs."""
    cell = nbformat.v4.new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = tags
    return cell


def header_cells(stem: str, title: str, intro: str, parameters: dict) -> list:
    """Title + badge, install cell, ``parameters`` cell, set-up cell."""
    badge = (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({REPO_URL.replace('https://github.com', 'https://colab.research.google.com/github')}"
        f"/blob/v{PACKAGE_VERSION}/notebooks/{stem}.ipynb)"
    )
    params = {"PROFILE": "auto", "WORKDIR": ".", **parameters}
    lines = [
        "# Parameters: literal values only (papermill injects overrides after this cell).",
        *(f"{k} = {v!r}" for k, v in params.items()),
    ]
    return [
        md(f"# {title}\n\n{badge}\n\n{intro}"),
        code(INSTALL),
        code("\n".join(lines), tags=["parameters"]),
        code(
            "import svdinst\nfrom svdinst.course.notebook import setup\n\n"
            f'print("Written for svdinst {PACKAGE_VERSION}; running", svdinst.__version__)\n'
            "ctx = setup(PROFILE, WORKDIR)"
        ),
    ]


def write_notebook(
    path: str | Path, title: str, intro: str, cells: list, parameters: dict | None = None
) -> Path:
    """Write ``path`` with the standard header followed by ``cells`` (kernelspec python3)."""
    path = Path(path)
    nb = nbformat.v4.new_notebook()
    nb.cells = header_cells(path.stem, title, intro, parameters or {}) + list(cells)
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    for cell in nb.cells:  # stable ids keep diffs small when a notebook is regenerated
        cell.pop("id", None)
    nb.nbformat, nb.nbformat_minor = 4, 4
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    sys.exit("Import this module from a script; see its docstring.")
