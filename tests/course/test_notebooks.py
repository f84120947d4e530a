"""Notebook hygiene: thin, parameterised, stripped, runnable headless and on Colab."""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

import svdinst

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
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


# ----------------------------------------------------------------------------- opening cells

REPO = Path(__file__).parents[2]


def _nbscaffold():
    """tools/nbscaffold.py (a dev tool outside the package), imported from its file."""
    spec = importlib.util.spec_from_file_location("nbscaffold", REPO / "tools" / "nbscaffold.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up while being defined
    spec.loader.exec_module(module)
    return module


def _setting() -> tuple[str, str]:
    """pyproject.toml's [tool.svdinst] repository and tag, read here without nbscaffold."""
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert data["project"]["version"] == svdinst.__version__
    setting = data["tool"]["svdinst"]
    return setting["repository"], setting["tag"].format(version=svdinst.__version__)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_badge_and_install_cell_agree_with_the_setting_and_version(path: Path) -> None:
    repo, tag = _setting()
    nb = nbformat.read(path, as_version=4)
    urls = re.findall(
        r"\(https://colab\.research\.google\.com/github/([^)]*)\)", nb.cells[0].source
    )
    assert urls == [f"{repo}/blob/{tag}/notebooks/{path.name}"], urls
    install = [c.source for c in nb.cells if "pip" in c.source and "install" in c.source]
    assert len(install) == 1, f"{path.name}: one install cell"
    assert f'"svdinst[colab] @ git+https://github.com/{repo}@{tag}"' in install[0]
    assert "[notebooks]" not in install[0]  # Colab keeps its own Jupyter stack
    assert f'"Written for svdinst {svdinst.__version__}; running"' in nb.cells[4].source
    # And exactly what nbscaffold generates (so `make repoint` can rewrite them).
    tool = _nbscaffold()
    src = tool.read_source()
    assert nb.cells[1].source == tool.install_source(src)
    assert nb.cells[3].source == tool.drive_source()
    assert nb.cells[4].source == tool.setup_source(src)
    assert nb.cells[2].source.startswith(tool.parameters_source({}, []))
    # The chapter's cost on a T4, from the course preset's budget: stale if the preset changes.
    assert tool.t4_line(path.stem) in nb.cells[0].source.split("\n")


def _fake_colab(monkeypatch: pytest.MonkeyPatch, mounted: list) -> None:
    """``google.colab`` in sys.modules, with a drive.mount that records its calls."""
    fake = types.ModuleType("google.colab")
    fake.drive = types.SimpleNamespace(mount=lambda where: mounted.append(where))
    monkeypatch.setitem(sys.modules, "google.colab", fake)


def test_install_cell_failure_is_one_line_saying_what_to_do(monkeypatch) -> None:
    source = nbformat.read(NOTEBOOKS[0], as_version=4).cells[1].source
    calls = []

    def pip(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "Collecting…\nERROR: no tag v0.2.0\n")

    monkeypatch.setattr(subprocess, "run", pip)
    exec(compile(source, "install", "exec"), {})  # not on Colab: nothing is installed
    assert calls == []
    _fake_colab(monkeypatch, [])
    with pytest.raises(SystemExit) as failed:
        exec(compile(source, "install", "exec"), {})
    message = str(failed.value.code)
    assert "\n" not in message and "ERROR: no tag v0.2.0" in message
    assert "make repoint REPO=" in message
    assert f"svdinst-{svdinst.__version__}-py3-none-any.whl[colab]" in message
    assert calls and calls[0][-1].startswith("svdinst[colab] @ git+https://github.com/")


def test_drive_cell_chooses_workdir_only_on_colab(monkeypatch, tmp_path, capsys) -> None:
    from svdinst.course import colab

    source = nbformat.read(NOTEBOOKS[0], as_version=4).cells[3].source
    run = lambda **params: (exec(compile(source, "drive", "exec"), params), params)[1]  # noqa: E731
    assert run(WORKDIR=".", USE_DRIVE=True)["WORKDIR"] == "."  # not on Colab: untouched

    monkeypatch.setattr(colab, "DRIVE_MOUNT", tmp_path / "drive")
    monkeypatch.setattr(colab, "DRIVE_WORKDIR", tmp_path / "drive" / "MyDrive" / "svdinst")
    monkeypatch.setattr(colab, "LOCAL_WORKDIR", tmp_path / "content" / "svdinst")
    mounted: list = []
    _fake_colab(monkeypatch, mounted)
    # Colab without Drive: /content/svdinst and a warning that it is wiped on disconnect.
    assert run(WORKDIR=".", USE_DRIVE=False)["WORKDIR"] == str(colab.LOCAL_WORKDIR)
    assert "wiped" in capsys.readouterr().out and mounted == []
    # USE_DRIVE mounts Drive and works in MyDrive/svdinst.
    monkeypatch.setattr(colab, "drive_mounted", lambda: bool(mounted))
    assert run(WORKDIR=".", USE_DRIVE=True)["WORKDIR"] == str(colab.DRIVE_WORKDIR)
    assert mounted == [str(colab.DRIVE_MOUNT)] and "survive" in capsys.readouterr().out
    # An explicit WORKDIR is kept.
    assert run(WORKDIR=str(tmp_path / "mine"), USE_DRIVE=False)["WORKDIR"] == str(tmp_path / "mine")


def test_repoint_rewrites_the_setting_and_only_the_opening_cells(tmp_path, monkeypatch) -> None:
    tool = _nbscaffold()
    real = [(p, p.read_bytes()) for p in (REPO / "pyproject.toml", *NOTEBOOKS)]
    pyproject = tmp_path / "pyproject.toml"
    shutil.copy(REPO / "pyproject.toml", pyproject)
    copies = [Path(shutil.copy(p, tmp_path / p.name)) for p in NOTEBOOKS]
    monkeypatch.setattr(tool, "PYPROJECT", pyproject)
    monkeypatch.setattr(tool, "NOTEBOOKS", tmp_path)
    assert tool.main(["repoint", "--repo", "me/svdinst", "--tag", "main"]) == 0
    assert tomllib.loads(pyproject.read_text())["tool"]["svdinst"] == {
        "repository": "me/svdinst",
        "tag": "main",
    }
    for original, copy in zip(NOTEBOOKS, copies):
        old, new = (nbformat.read(p, as_version=4) for p in (original, copy))
        assert f"github/me/svdinst/blob/main/notebooks/{copy.name})" in new.cells[0].source
        assert "git+https://github.com/me/svdinst@main" in new.cells[1].source
        assert [c.source for c in old.cells[5:]] == [c.source for c in new.cells[5:]]
        assert old.cells[2].source == new.cells[2].source  # the chapter's own parameters kept
    # Idempotent: a second pass changes nothing; the repository's own files were not touched.
    assert not any(tool.rewrite_openings(p) for p in copies)
    assert all(p.read_bytes() == data for p, data in real)


def test_make_repoint_calls_nbscaffold() -> None:
    if shutil.which("make") is None:
        pytest.skip("no make")
    out = subprocess.run(
        ["make", "-n", "repoint", "REPO=me/svdinst", "TAG=main"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert 'tools/nbscaffold.py repoint --repo "me/svdinst" --tag "main"' in out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_settings_the_text_tells_learners_to_set_are_parameters(path: Path) -> None:
    # Notebook 03 once said "set `IMAGE_TOKENS = "patches"`" when no such parameter existed.
    nb = nbformat.read(path, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    defined = set(re.findall(r"^([A-Z][A-Z0-9_]*) =", params.source, flags=re.M))
    told = {
        name
        for cell in nb.cells
        if cell.cell_type == "markdown"
        for name in re.findall(r"`([A-Z][A-Z0-9_]*) = [^`]+`", cell.source)
    }
    assert told <= defined, (
        f"{path.name}: the text names settings that are not parameters: {told - defined}"
    )
