"""Table I as Markdown: one block per N (rows of different N are never side by side).

Each row: the training seeds, FID/KID, the distance to the oracle, LPIPS (only when some row of
the block has it: otherwise the block says LPIPS is unavailable instead of a column of n/a), and
the row's training budget (steps, backbone) and footprint. Untrained rows and reference rows are
marked in the method column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from svdinst.evaluation.labels import label
from svdinst.evaluation.lpips import UNAVAILABLE
from svdinst.evaluation.references import is_reference
from svdinst.evaluation.verdict import nested_get, row_n

# The student report's Table I (strength 0.8, 10 seeds per test photo; LPIPS = seed diversity).
ORIGINAL_TABLE: dict[str, dict[str, float | None]] = {
    "svd-inst": {"fid": 125.1, "lpips": 0.54},
    "inst": {"fid": 127.5, "lpips": 0.53},
    "cyclegan": {"fid": 178.3, "lpips": None},  # deterministic: no seed diversity
    "stytr2": {"fid": 171.3, "lpips": None},
    "fast_style": {"fid": 172.7, "lpips": None},
}


def _cell(values: Sequence[Any], digits: int) -> str:
    """One table cell: a value, mean ± std over training seeds, or why there is none."""
    if any(v is None for v in values):
        return "—"
    if any(isinstance(v, str) for v in values):
        return "n/a" if all(v == UNAVAILABLE for v in values) else str(values[0])
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def _int_cell(values: Sequence[Any]) -> str:
    values = [v for v in values if v is not None]
    return f"{int(values[0]):,}" if values else "—"


def is_untrained(runs: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a row was trained for zero steps here (its ``train_steps`` is 0)."""
    return bool(runs) and all(r.get("train_steps") == 0 for r in runs)


def _steps_cell(runs: Sequence[Mapping[str, Any]]) -> str:
    steps = {r.get("train_steps") for r in runs}
    if steps == {None}:
        return "—"
    if steps == {0}:
        return "0 (untrained)"
    return ", ".join(f"{s:,}" for s in sorted(s for s in steps if s is not None))


Column = tuple[str, Callable[[Sequence[Mapping[str, Any]]], str]]


def _metric(digits: int, *keys: str) -> Callable[[Sequence[Mapping[str, Any]]], str]:
    return lambda runs: _cell([nested_get(r, *keys) for r in runs], digits)


METRIC_COLUMNS: list[Column] = [
    ("FID ↓", _metric(1, "fid")),
    ("KID ↓", _metric(4, "kid", "mean")),
    ("PSNR to oracle ↑", _metric(2, "oracle", "psnr")),
    ("SSIM to oracle ↑", _metric(3, "oracle", "ssim")),
]
LPIPS_COLUMNS: list[Column] = [
    ("LPIPS to oracle ↓", _metric(3, "oracle", "lpips")),
    ("LPIPS diversity ↑", _metric(3, "lpips_diversity")),
    ("content LPIPS ↓", _metric(3, "content_lpips")),
    ("ArtFID ↓", _metric(1, "artfid")),
]
BUDGET_COLUMNS: list[Column] = [
    ("training steps", _steps_cell),
    ("backbone", lambda runs: str(runs[0].get("backbone") or "—")),
    ("trainable params", lambda runs: _int_cell([r.get("trainable_params") for r in runs])),
    ("checkpoint bytes", lambda runs: _int_cell([r.get("checkpoint_bytes") for r in runs])),
]


def _row_name(method: str, runs: Sequence[Mapping[str, Any]]) -> str:
    if is_reference(method):
        return f"*{label(method)}*"
    name = label(method)
    return f"{name} — **untrained**" if is_untrained(runs) and "untrained" not in name else name


def _has_lpips(block: Mapping[str, Sequence[Mapping[str, Any]]]) -> bool:
    return any(
        isinstance(nested_get(r, *keys), float)
        for runs in block.values()
        for r in runs
        for keys in (("lpips_diversity",), ("content_lpips",), ("oracle", "lpips"))
    )


def blocks_by_n(
    results: Mapping[str, Sequence[Mapping[str, Any]]],
) -> dict[int | None, dict[str, Sequence[Mapping[str, Any]]]]:
    """Rows grouped by N, largest N first (rows whose seeds disagree on N: key `None`, last)."""
    blocks: dict[int | None, dict[str, Sequence[Mapping[str, Any]]]] = {}
    for method, runs in results.items():
        blocks.setdefault(row_n(runs), {})[method] = runs
    return dict(sorted(blocks.items(), key=lambda kv: -1 if kv[0] is None else -kv[0]))


def block_markdown(block: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """One N block of Table I (Markdown)."""
    columns = [*METRIC_COLUMNS, *(LPIPS_COLUMNS if _has_lpips(block) else []), *BUDGET_COLUMNS]
    head = "| method | training seeds | " + " | ".join(c[0] for c in columns) + " |\n"
    head += "|---|---|" + "---|" * len(columns) + "\n"
    rows = []
    for method, runs in block.items():
        seeds = "—" if is_reference(method) or is_untrained(runs) else str(len(runs))
        cells = [_row_name(method, runs), seeds, *(get(runs) for _, get in columns)]
        rows.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def table_markdown(results: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """Table I as Markdown: one block per N; values are mean ± sample std over training seeds."""
    parts = []
    for n, block in blocks_by_n(results).items():
        title = f"**N = {n}**" if n is not None else "**N differs between training seeds**"
        note = "" if _has_lpips(block) else " (LPIPS unavailable: its columns are left out)"
        parts += [f"{title} generated images per row{note}:", "", block_markdown(block)]
    return "\n".join(parts)


def original_markdown(results: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """The original report's FID / LPIPS of the methods we have (other data, other N)."""
    rows = [
        f"| {label(m)} | {ORIGINAL_TABLE[m]['fid']} | {ORIGINAL_TABLE[m]['lpips'] or '—'} |"
        for m in results
        if m in ORIGINAL_TABLE
    ]
    if not rows:
        return ""
    return "| method | original FID | original LPIPS |\n|---|---|---|\n" + "\n".join(rows) + "\n"


def oracle_markdown(results: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """The paired distance to the mural-proxy oracle, for rows that have it."""
    rows = [
        f"| {label(m)} | {row_n(runs)} | {_cell([r['oracle']['psnr'] for r in runs], 2)} | "
        f"{_cell([r['oracle']['ssim'] for r in runs], 3)} | "
        f"{_cell([r['oracle']['lpips'] for r in runs], 3)} |"
        for m, runs in results.items()
        if all("oracle" in r for r in runs)
    ]
    if not rows:
        return ""
    return (
        "| method | N | PSNR to oracle ↑ | SSIM to oracle ↑ | LPIPS to oracle ↓ |\n"
        "|---|---|---|---|---|\n" + ("\n".join(rows) + "\n")
    )
