"""Notebooks run standalone, as on Colab: installed package only, no repository around them.

The package is built as a wheel and installed (not editable) into a private folder that is put
first on ``PYTHONPATH``, so the kernel imports that copy instead of the editable checkout. The
notebook is copied into an empty folder and run there with papermill; it must make its own data.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
NOTEBOOK = REPO / "notebooks" / "01_data.ipynb"


@pytest.fixture(scope="module")
def installed_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``svdinst`` built into a wheel and installed, non-editable, into ``TMP/site``."""
    tmp = tmp_path_factory.mktemp("wheel")
    # Build from a clean copy: an in-tree build would leave build/ in the checkout, and a stale
    # build/lib can smuggle deleted modules into later wheels.
    src = tmp / "src"
    shutil.copytree(REPO / "svdinst", src / "svdinst", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp), str(src)]
    subprocess.run(build, check=True, cwd=tmp)
    (wheel,) = tmp.glob("svdinst-*.whl")
    site = tmp / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    assert (site / "svdinst" / "__init__.py").is_file()
    return site


def test_wheel_ships_every_module(installed_site: Path) -> None:
    shipped = {p.relative_to(installed_site).as_posix() for p in installed_site.rglob("*.py")}
    in_repo = {p.relative_to(REPO).as_posix() for p in (REPO / "svdinst").rglob("*.py")}
    assert in_repo <= shipped, f"missing from the wheel: {sorted(in_repo - shipped)}"


@pytest.mark.slow
def test_data_notebook_runs_from_the_installed_package(
    installed_site: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    work = tmp_path / "colab"
    work.mkdir()
    solutions = _solutions_tool()
    solutions.solve(NOTEBOOK, work)  # CI runs the exercises solved: every check must pass
    env = {**os.environ, "PYTHONPATH": str(installed_site), "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable, "-m", "papermill", NOTEBOOK.name, "executed.ipynb",
        "-k", "python3", "--cwd", str(work), "--no-progress-bar",
        "-p", "PROFILE", "tiny", "-p", "WORKDIR", str(work),
    ]  # fmt: skip
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]

    executed = json.loads((work / "executed.ipynb").read_text())
    text = "".join(
        "".join(out.get("text", ""))
        for cell in executed["cells"]
        for out in cell.get("outputs", [])
    )
    # notebook.setup prints where svdinst was imported from: the installed copy, not the repo.
    assert f"(from {installed_site / 'svdinst'})" in text, text[:2000]
    assert str(REPO / "svdinst") not in text
    for split in ("content", "style", "test"):
        assert any((work / "data" / split).glob("*.png")), f"data/{split} was not created"
    assert (work / "data" / "LICENSES.md").is_file()
    assert any((work / "reports" / "figures").glob("01_*.png"))
    assert solutions.verify(work / "executed.ipynb") == []


def _solutions_tool():
    """tools/solutions.py (a dev tool outside the package), imported from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("solutions", REPO / "tools" / "solutions.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module
