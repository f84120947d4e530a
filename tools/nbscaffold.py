"""The course notebooks' opening cells, generated from one setting (a dev tool, not part of the package).

Every notebook starts the same way (docs/DESIGN.md): a title with the Colab badge, a guarded
install cell that runs only on Colab, the ``parameters`` cell (literal values only), a guarded
Google Drive cell that chooses ``WORKDIR`` on Colab, then the set-up cell. The badge and the
install cell point at the repository and tag named once, in ``pyproject.toml``'s
``[tool.svdinst]`` (``tag`` may use ``{version}``, i.e. ``[project].version``).

    python tools/nbscaffold.py openings                        # rewrite every notebook's opening cells
    python tools/nbscaffold.py repoint --repo me/svdinst --tag main   # a fork (`make repoint`)

Authors of a new chapter pass its own cells:

    from tools.nbscaffold import md, code, write_notebook
    write_notebook("notebooks/08_x.ipynb", "08 · X", "intro…", [md("## …"), code("…")],
                   parameters={"SEED": 0})

``tests/course/test_notebooks.py`` checks that every notebook's opening cells are these.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = REPO / "pyproject.toml"
NOTEBOOKS = REPO / "notebooks"
# The first lines of every parameters cell; a chapter's own parameters follow them.
STANDARD_PARAMETERS = {"PROFILE": "auto", "WORKDIR": ".", "USE_DRIVE": False}
PARAMETERS_HEADER = (
    "# Parameters: literal values only (papermill injects overrides after this cell)."
)
BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
# How each opening code cell is recognised when a notebook is rewritten in place.
INSTALL_MARK = "# Colab only: install the kit"
T4_MARK = "**On a free Colab T4**"
# What each chapter costs on a free Colab T4 with the `course` preset. Minutes come from
# svdinst.course.budget (estimated, method in reports/benchmarks.md); peak GPU memory (reserved, of
# the 14.0 GiB cap) and disk from the H200 rehearsal of 2026-11-30 (block `rehearsal/course`);
# downloads are what the chapter fetches the first time (the Hugging Face cache lives in
# /content, so a new Colab session fetches them again unless HF_HOME points at Drive).
T4_FACTS = {
    "01_data": (0.0, "≈ 0.1 GB (data)", "nothing (the photos ship with pip packages)"),
    "02_svd_decomposition": (14.0, "≈ 4 GB (SVD cache)", "SD-1.4 (≈ 5 GB, fp32)"),
    "03_textual_inversion": (
        9.6,
        "≈ 0.1 GB (run)",
        "SD-1.4 (≈ 5 GB) and the CLIP-L vision tower (≈ 1.7 GB)",
    ),
    "04_joint_training": (
        13.8,
        "≈ 0.2 GB (runs)",
        "SD-1.4 (≈ 5 GB) and the CLIP-L vision tower (≈ 1.7 GB)",
    ),
    "05_stylize": (9.8, "≈ 0.1 GB (images)", "SD-1.4 (≈ 5 GB)"),
    "06_baselines": (
        13.9,
        "≈ 5.5 GB (baseline runs)",
        "torchvision's VGG-19 (≈ 0.55 GB) when online",
    ),
    "07_metrics_and_report": (
        0.3,
        "< 0.1 GB (report)",
        "torchvision's AlexNet for LPIPS (≈ 0.25 GB) when online",
    ),
}
DRIVE_MARK = "# Colab only: where your work lives"
SETUP_MARK = "ctx = setup(PROFILE, WORKDIR)"


@dataclass(frozen=True)
class Source:
    """Where the notebooks install the kit from: ``[tool.svdinst]`` with ``{version}`` resolved.

    Args:
        repository (`str`): GitHub ``owner/name``.
        tag (`str`): the git tag, branch or commit the badge and install cell use.
        version (`str`): ``[project].version``, the version the notebooks are written for.
    """

    repository: str
    tag: str
    version: str

    @property
    def install_spec(self) -> str:
        """The pip requirement the install cell installs."""
        return f"svdinst[colab] @ git+https://github.com/{self.repository}@{self.tag}"

    def badge(self, stem: str) -> str:
        """The Colab badge of ``notebooks/{stem}.ipynb``."""
        return (
            "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{self.repository}/blob/{self.tag}"
            f"/notebooks/{stem}.ipynb)"
        )


def read_source(pyproject: Path | None = None) -> Source:
    """The notebooks' install source from ``pyproject``'s ``[tool.svdinst]`` (default: the repo's)."""
    data = tomllib.loads((pyproject or PYPROJECT).read_text())
    version = data["project"]["version"]
    setting = data["tool"]["svdinst"]
    return Source(setting["repository"], setting["tag"].format(version=version), version)


def set_source(repository: str, tag: str, pyproject: Path | None = None) -> None:
    """Rewrite ``[tool.svdinst]``'s ``repository`` and ``tag`` lines (comments kept)."""
    pyproject = pyproject or PYPROJECT
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repository):
        raise SystemExit(f"REPO must be a GitHub 'owner/name', got {repository!r}.")
    text = pyproject.read_text()
    head, sep, rest = text.partition("[tool.svdinst]\n")
    if not sep:
        raise SystemExit(f"{pyproject} has no [tool.svdinst] table.")
    table, nxt, tail = rest.partition("\n[")
    for key, value in (("repository", repository), ("tag", tag)):
        table, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {json.dumps(value)}", table)
        if n != 1:
            raise SystemExit(f"{pyproject} [tool.svdinst] has no single '{key} = …' line.")
    pyproject.write_text(head + sep + table + nxt + tail)


def t4_line(stem: str) -> str:
    """The title cell's line on what the chapter costs on a free Colab T4 (``course`` preset)."""
    from svdinst.course import budget
    from svdinst.course.profiles import PROFILES

    minutes = budget.t4_estimate(PROFILES["course"])[stem[:2]] / 60
    gib, disk, download = T4_FACTS[stem]
    return (
        f'{T4_MARK} (`PROFILE="auto"` → `course`; estimated, see `reports/benchmarks.md`): '
        f"about {minutes:.0f} min · peak GPU memory {gib:.1f} GiB of the 14.0 GiB we allow · "
        f"disk {disk} · first use downloads {download}."
    )


def _with_t4_line(title_source: str, stem: str) -> str:
    """``title_source`` with its T4 line (after the badge line) written or replaced."""
    lines = [line for line in title_source.split("\n") if not line.startswith(T4_MARK)]
    at = next(i for i, line in enumerate(lines) if BADGE.search(line)) + 1
    return "\n".join([*lines[:at], "", t4_line(stem), *lines[at:]]).replace("\n\n\n", "\n\n")


def _literal(value: object) -> str:
    """A parameter value as ruff format writes it (double-quoted strings)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


def install_source(src: Source) -> str:
    """The install cell: Colab only; on failure one line says what to do, not pip's traceback."""
    wheel = f"/content/drive/MyDrive/svdinst-{src.version}-py3-none-any.whl[colab]"
    return f'''{INSTALL_MARK} and what Colab lacks (the `colab` extra: Colab's own
# torch and Jupyter stay). Written by tools/nbscaffold.py from pyproject.toml's [tool.svdinst].
import subprocess
import sys

SVDINST = "{src.install_spec}"
if "google.colab" in sys.modules:
    if SVDINST.startswith("/content/drive"):  # a wheel uploaded to Google Drive
        from google.colab import drive

        drive.mount("/content/drive")
    print("Installing", SVDINST, "(about a minute)")
    pip = [sys.executable, "-m", "pip", "install", "-q", SVDINST]
    result = subprocess.run(pip, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        why = (result.stderr.strip().splitlines() or ["no message from pip"])[-1]
        raise SystemExit(
            f"Could not install {{SVDINST}} ({{why}}). Open this notebook from a fork re-pointed with "
            "`make repoint REPO=you/svdinst TAG=main`, or upload the wheel (`pip wheel --no-deps .`) "
            'to Drive and set SVDINST = "{wheel}" above.'
        )'''


def drive_source() -> str:
    """The Drive cell: on Colab only, chooses WORKDIR (Drive when asked or mounted)."""
    return f"""{DRIVE_MARK}. /content is wiped when Colab disconnects: USE_DRIVE = True
# mounts Google Drive and keeps data, runs and outputs in MyDrive/svdinst (or in WORKDIR if set).
import sys

if "google.colab" in sys.modules:
    from svdinst.course.colab import colab_workdir

    WORKDIR = colab_workdir(WORKDIR, use_drive=USE_DRIVE)"""


def setup_source(src: Source) -> str:
    """The set-up cell: names the version the notebook was written for, then ``setup``."""
    return (
        "import svdinst\nfrom svdinst.course.notebook import setup\n\n"
        f'print("Written for svdinst {src.version}; running", svdinst.__version__)\n'
        f"{SETUP_MARK}"
    )


def parameters_source(parameters: dict, own_lines: list[str] | None = None) -> str:
    """The parameters cell: header, the standard parameters, then the chapter's own."""
    lines = [PARAMETERS_HEADER, *(f"{k} = {_literal(v)}" for k, v in STANDARD_PARAMETERS.items())]
    lines += (
        own_lines
        if own_lines is not None
        else [f"{k} = {_literal(v)}" for k, v in parameters.items()]
    )
    return "\n".join(lines)


def md(text: str) -> nbformat.NotebookNode:
    """A markdown cell."""
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text: str, tags: list[str] | None = None) -> nbformat.NotebookNode:
    """A code cell with no outputs."""
    cell = nbformat.v4.new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = tags
    return cell


def header_cells(stem: str, title: str, intro: str, parameters: dict, src: Source) -> list:
    """Title + badge, install cell, ``parameters`` cell, Drive cell, set-up cell."""
    return [
        md(f"# {title}\n\n{src.badge(stem)}\n\n{t4_line(stem)}\n\n{intro}"),
        code(install_source(src)),
        code(parameters_source(parameters), tags=["parameters"]),
        code(drive_source()),
        code(setup_source(src)),
    ]


def _save(nb: nbformat.NotebookNode, path: Path) -> None:
    for cell in nb.cells:  # no cell ids: diffs stay small when a notebook is regenerated
        cell.pop("id", None)
    nb.nbformat, nb.nbformat_minor = 4, 4
    nbformat.write(nb, path)


def write_notebook(
    path: str | Path, title: str, intro: str, cells: list, parameters: dict | None = None
) -> Path:
    """Write ``path`` with the standard opening cells followed by ``cells`` (kernelspec python3)."""
    path = Path(path)
    nb = nbformat.v4.new_notebook()
    nb.cells = header_cells(path.stem, title, intro, parameters or {}, read_source()) + list(cells)
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    _save(nb, path)
    return path


def _find(cells: list, mark: str) -> int | None:
    found = [i for i, c in enumerate(cells) if c.cell_type == "code" and mark in c.source]
    return found[0] if found else None


def rewrite_openings(path: str | Path, src: Source | None = None) -> bool:
    """Regenerate one notebook's opening cells in place; body cells are left as they are.

    Rewrites the badge line and the T4 line of the title cell (the rest of that cell is kept),
    the install cell,
    the ``PROFILE``/``WORKDIR``/``USE_DRIVE`` lines of the parameters cell (its other lines are
    kept), the Drive cell (inserted after the parameters cell if missing) and the set-up cell.

    Returns:
        `bool`: whether the file changed.
    """
    path, src = Path(path), src or read_source()
    before = path.read_text()
    nb = nbformat.reads(before, as_version=4)
    cells = nb.cells
    if not cells or cells[0].cell_type != "markdown" or not BADGE.search(cells[0].source):
        raise SystemExit(f"{path}: the first cell must be the title markdown with a Colab badge.")
    cells[0].source = BADGE.sub(lambda _: src.badge(path.stem), cells[0].source, count=1)
    cells[0].source = _with_t4_line(cells[0].source, path.stem)
    params = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    install = _find(cells, INSTALL_MARK)
    if len(params) != 1 or install is None:
        raise SystemExit(f"{path}: needs one install cell and one 'parameters' cell.")
    cells[install].source = install_source(src)
    p = params[0]
    own = [
        line
        for line in cells[p].source.splitlines()
        if line != PARAMETERS_HEADER and line.split(" =")[0] not in STANDARD_PARAMETERS
    ]
    cells[p].source = parameters_source({}, own)
    drive = _find(cells, DRIVE_MARK)
    if drive is None:
        cells.insert(p + 1, code(drive_source()))
    else:
        cells[drive].source = drive_source()
    setup_at = _find(cells, SETUP_MARK)
    if setup_at is None:
        raise SystemExit(f"{path}: no set-up cell ('{SETUP_MARK}').")
    cells[setup_at].source = setup_source(src)
    order = [0, install, p, _find(cells, DRIVE_MARK), _find(cells, SETUP_MARK)]
    if order != [0, 1, 2, 3, 4]:
        raise SystemExit(f"{path}: opening cells out of order (cells {order}).")
    after = nbformat.writes(nb) + "\n"
    if after != before:
        _save(nb, path)
    return after != before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nbscaffold", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    openings = sub.add_parser("openings", help="rewrite the notebooks' opening cells in place")
    openings.add_argument("notebooks", nargs="*", type=Path)
    repoint = sub.add_parser("repoint", help="set [tool.svdinst] and rewrite every notebook")
    repoint.add_argument("--repo", required=True, help="GitHub owner/name, e.g. me/svdinst")
    repoint.add_argument("--tag", required=True, help="tag, branch or commit, e.g. main")
    args = parser.parse_args(argv)
    if args.command == "repoint":
        set_source(args.repo, args.tag)
    paths = getattr(args, "notebooks", None) or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    src = read_source()
    for path in paths:
        changed = rewrite_openings(path, src)
        print(f"{path}: {'rewritten' if changed else 'unchanged'} ({src.install_spec})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
