"""One way for every benchmark to write its results into ``reports/benchmarks.md``.

Each script owns a section (between ``<!-- NAME:begin -->`` / ``<!-- NAME:end -->`` markers) and,
inside it, named blocks, so different runs of one script (modes, T4 cap, multi-GPU…) add up and a
rerun replaces only its own block. Text outside the markers (hand-written analysis) is kept.
"""

from __future__ import annotations

from pathlib import Path

# The one file every benchmark writes into (absolute: the scripts may run from any folder).
REPORT = Path(__file__).resolve().parent.parent / "reports" / "benchmarks.md"


def _replace_between(text: str, begin: str, end: str, new: str) -> str | None:
    if begin in text and end in text:
        return text[: text.index(begin)] + new + text[text.index(end) + len(end) :]
    return None


def write_block(path: Path, section: str, heading: str, text: str, block: str = "main") -> None:
    """Put ``text`` into block ``block`` of section ``section`` of ``path`` (created if needed).

    Args:
        path (`Path`): the Markdown file, e.g. ``reports/benchmarks.md``.
        section (`str`): the script's marker name, e.g. ``"train_step"``.
        heading (`str`): the section's Markdown heading (used when the section is new).
        text (`str`): the block's Markdown.
        block (`str`, defaults to ``"main"``): which of the section's blocks to replace.
    """
    begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
    b, e = f"<!-- {section}/{block}:begin -->", f"<!-- {section}/{block}:end -->"
    old = (
        path.read_text() if path.exists() else "# Benchmarks\n\nMeasured numbers, with the card.\n"
    )
    if begin not in old or end not in old:
        old = old.rstrip("\n") + f"\n\n{begin}\n## {heading}\n\n{end}\n"
    start, stop = old.index(begin), old.index(end)
    body = old[start:stop]
    new_block = f"{b}\n{text.strip()}\n{e}"
    body = _replace_between(body, b, e, new_block) or body.rstrip("\n") + f"\n\n{new_block}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(old[:start] + body + old[stop:])
