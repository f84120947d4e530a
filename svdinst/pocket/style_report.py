"""The pocket report's view of :mod:`svdinst.pocket.style_check`: its table and what it says.

Kept apart from the check itself so the report reads the committed JSON without importing torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

STYLE_CHECK_NAME = "pocket_style_check"  # reports/pocket/<name>.json, reports/figures/<name>.png


def style_check_markdown(m: Mapping[str, Any]) -> str:
    """The confusion table (rows: caption's style; columns: recognised style) and its summary."""
    classes = m["classes"]
    lines = [
        "| caption asks for ↓ / looks like → | " + " | ".join(classes) + " |",
        "|---|" + "---|" * len(classes),
    ]
    for c, row in zip(classes, m["confusion"]):
        lines.append(f"| {c} | " + " | ".join(str(x) for x in row) + " |")
    return "\n".join(lines) + (
        f"\n\nSamples showing the style asked for: **{m['accuracy']:.0%}** of "
        f"{m['n_per_class'] * len(classes)} (chance {m['chance']:.0%}; the classifier recognises "
        f"{m['classifier_accuracy']:.0%} of held-out real crops).\n"
    )


def style_check_reading(m: Mapping[str, Any]) -> str:
    """Which style the samples fall into most, and whether the captions steer beyond chance."""
    classes, table = m["classes"], m["confusion"]
    columns = [sum(row[j] for row in table) for j in range(len(classes))]
    top = max(range(len(classes)), key=columns.__getitem__)
    total = sum(columns)
    never = [c for i, c in enumerate(classes) if table[i][i] == 0]
    text = (
        f"The most frequent look is {classes[top]}: {columns[top]} of {total} samples, whatever "
        f"the caption asked for."
    )
    if never:
        text += f" Never drawn when asked for: {', '.join(never)}."
    if m["accuracy"] < (m["chance"] + m["classifier_accuracy"]) / 2:
        text += (
            " Nearer chance than the classifier's ceiling: the captions barely steer this UNet "
            "between styles, so a learned token has little style space to move in."
        )
    return text


def style_check_section(here: Path) -> list[str]:
    """The report's lines for ``<here>/pocket/pocket_style_check.json``; none without it."""
    path = here / "pocket" / f"{STYLE_CHECK_NAME}.json"
    if not path.is_file():
        return []
    m = json.loads(path.read_text())
    lines = [
        "",
        "### Does the UNet draw the style its caption names?",
        "",
        f"{m['n_per_class']} samples from noise per class ({m['steps']} DDIM steps, guidance "
        f"{m['guidance']:g}, {m['resolution']} px) under the pretraining captions, each named by "
        "the nearest class centroid of Inception features of real styled crops "
        "(`svdinst pocket style-check`):",
        "",
        style_check_markdown(m),
        style_check_reading(m),
    ]
    figure = here / "figures" / f"{STYLE_CHECK_NAME}.png"
    if figure.is_file():
        lines += ["", f"![samples from noise, a row per caption style](figures/{figure.name})"]
    return lines
