"""Executed notebooks (reports/executed/) are clean, small and complete; setup() quiets outputs."""

from __future__ import annotations

import base64
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
EXECUTED = ROOT / "reports" / "executed"


def _png(side: int) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _nb(path: Path, outputs: list[dict]) -> Path:
    cell = {"cell_type": "code", "source": "x", "metadata": {}, "execution_count": 1,
            "outputs": outputs}  # fmt: skip
    path.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4,
                                "nbformat_minor": 5}))  # fmt: skip
    return path


def test_checker_flags_spam_tracebacks_errors_and_big_images(tmp_path: Path) -> None:
    from svdinst.course.executed import folder_problems, notebook_problems

    bar = "".join(f"\rstylize: {p}%|##   | {p}/100" for p in range(0, 100, 10))
    spam = _nb(tmp_path / "spam.ipynb", [{"output_type": "stream", "name": "stderr", "text": bar}])
    assert any("progress-bar spam: 10 bar lines" in p for p in notebook_problems(spam))
    tb = _nb(tmp_path / "tb.ipynb", [
        {"output_type": "stream", "name": "stderr", "text": ["Traceback (most recent call last):\n"]},
        {"output_type": "error", "ename": "ValueError", "evalue": "bad", "traceback": []},
    ])  # fmt: skip
    problems = notebook_problems(tb)
    assert any("traceback" in p for p in problems) and any("ValueError: bad" in p for p in problems)
    big = _nb(tmp_path / "big.ipynb", [
        {"output_type": "display_data", "data": {"image/png": _png(4100)}, "metadata": {}}
    ])  # fmt: skip
    assert any("4100 px wide" in p for p in notebook_problems(big))
    clean = tmp_path / "clean"
    clean.mkdir()
    _nb(clean / "a.ipynb", [
        {"output_type": "stream", "name": "stderr", "text": "stylize: 100%|#####| 6/6 [00:01]\n"},
        {"output_type": "display_data", "data": {"image/png": _png(300)}, "metadata": {}},
    ])  # fmt: skip
    assert folder_problems(clean) == []
    assert "over the" in folder_problems(clean, budget=100)[0]  # the size budget is enforced


def test_committed_executed_notebooks_are_clean_complete_and_within_budget() -> None:
    from svdinst.course.executed import folder_problems

    executed = sorted(EXECUTED.glob("*.ipynb"))
    if not executed:
        pytest.skip("no executed notebooks committed yet (make reproduce writes reports/executed/)")
    sources = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert [p.name for p in executed] == sources, "commit every notebook's executed copy"
    assert folder_problems(EXECUTED) == []


def test_gitignore_keeps_executed_notebooks() -> None:
    lines = (ROOT / ".gitignore").read_text().splitlines()
    assert not any(line.strip().rstrip("/") in ("reports/executed", "/reports/executed")
                   for line in lines)  # fmt: skip


def test_quiet_outputs_prints_each_warning_once_and_silences_libraries(capsys) -> None:
    import logging

    from svdinst.course.notebook import quiet_outputs

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        quiet_outputs()
        for i in range(5):
            warnings.warn(f"tiny image {i}.png", UserWarning, stacklevel=1)
        warnings.warn("another place", UserWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert err.count("tiny image") == 1 and "repeats of this warning are hidden" in err
    assert "another place" in err
    assert logging.getLogger("diffusers").getEffectiveLevel() == logging.ERROR
    from diffusers.utils import logging as dlog

    assert not dlog.is_progress_bar_enabled()
    dlog.enable_progress_bar()  # leave the process as other tests expect it
