"""Checks on the executed notebooks committed under ``reports/executed/`` (``make reproduce``).

A learner reads them without running anything, so they must be clean and small: no error
outputs or tracebacks, no progress-bar spam (a bar redrawn step by step into a stream), no
oversized images, and :data:`BUDGET_BYTES` in total. Run ``python -m svdinst.course.executed
reports/executed`` before committing a reproduction; ``tests/course/test_executed.py`` runs the
same checks on what is committed.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

BUDGET_BYTES = 15 * 2**20  # issue 16: all executed notebooks together
MAX_IMAGE_BYTES = 2 * 2**20  # one PNG output: a figure at ≥ 100 dpi stays well below this
MAX_IMAGE_SIDE = 4000  # px: wider means a figure saved far above the kit's dpi
MAX_BAR_REDRAWS = 3  # lines of one stream output that look like a progress bar
BAR = re.compile(r"\d+%\|")  # tqdm's "42%|████" (also diffusers' / transformers' bars)
TRACEBACK = "Traceback (most recent call last)"


def _text(output: Mapping[str, Any]) -> str:
    text = output.get("text", "")
    if not text and "data" in output:
        text = output["data"].get("text/plain", "")
    return "".join(text) if isinstance(text, list) else str(text)


def output_problems(output: Mapping[str, Any]) -> list[str]:
    """What is wrong with one cell output (empty when it is clean)."""
    problems = []
    if output.get("output_type") == "error":
        problems.append(f"error output: {output.get('ename')}: {output.get('evalue')}")
    text = _text(output)
    if TRACEBACK in text:
        problems.append("a traceback in the output")
    bars = [line for line in re.split(r"[\r\n]", text) if BAR.search(line)]
    if len(bars) > MAX_BAR_REDRAWS:
        problems.append(f"progress-bar spam: {len(bars)} bar lines in one output")
    png = output.get("data", {}).get("image/png")
    if png:
        raw = base64.b64decode("".join(png) if isinstance(png, list) else png)
        side = max(Image.open(io.BytesIO(raw)).size)
        if len(raw) > MAX_IMAGE_BYTES:
            problems.append(f"an image of {len(raw) / 2**20:.1f} MiB")
        if side > MAX_IMAGE_SIDE:
            problems.append(f"an image {side} px wide")
    return problems


def notebook_problems(path: str | os.PathLike) -> list[str]:
    """``"<file> cell <i>: <problem>"`` for every problem of one executed notebook."""
    nb = json.loads(Path(path).read_text())
    found = []
    for i, cell in enumerate(nb.get("cells", [])):
        for output in cell.get("outputs", []):
            found += [f"{Path(path).name} cell {i}: {p}" for p in output_problems(output)]
    return found


def folder_problems(folder: str | os.PathLike, budget: int = BUDGET_BYTES) -> list[str]:
    """Every problem of the executed notebooks in ``folder``, their total size included."""
    files = sorted(Path(folder).glob("*.ipynb"))
    total = sum(f.stat().st_size for f in files)
    problems = [p for f in files for p in notebook_problems(f)]
    if total > budget:
        problems.append(
            f"{folder}: {total / 2**20:.1f} MiB of executed notebooks, over the "
            f"{budget / 2**20:.0f} MiB budget: save smaller figures or print less."
        )
    return problems


if __name__ == "__main__":  # python -m svdinst.course.executed reports/executed
    issues = folder_problems(sys.argv[1] if len(sys.argv) > 1 else "reports/executed")
    print("\n".join(issues) or "executed notebooks: clean and within budget")
    sys.exit(1 if issues else 0)
