"""The report's "Verdict" and "Limitations" sections, computed from the result tables.

:func:`verdict_section` answers the course question per block of equal N (Table I's blocks and,
when given, the pocket model's table): SVD-InST against InST, SVDiff alone, the base model and
each baseline, on every metric both rows have, judged against the pooled seed spread
(:mod:`svdinst.evaluation.verdict`), plus the best row of each metric, the untrained rows that
beat trained ones, and where the reference rows (:mod:`svdinst.evaluation.references`) put them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from svdinst.evaluation.labels import label
from svdinst.evaluation.references import SEED0, base_method, is_reference
from svdinst.evaluation.tables import blocks_by_n, is_untrained
from svdinst.evaluation.verdict import (
    DIFFUSION_METHODS,
    METRICS,
    NOISE_MULTIPLE,
    OPPONENTS,
    SUBJECT,
    compare,
    metric_values,
    verdict_block,
)

Results = Mapping[str, Sequence[Mapping[str, Any]]]
WEAK_BUDGET = 100  # a baseline trained fewer steps has not converged: say so


def _budget_words(runs: Sequence[Mapping[str, Any]]) -> str | None:
    steps, backbone = runs[0].get("train_steps"), runs[0].get("backbone")
    if steps is None and backbone is None:
        return None
    words = "untrained" if steps == 0 else f"{steps:,} steps" if steps is not None else ""
    return ", ".join(w for w in (words, backbone) if w)


def _subject(block: Results) -> str | None:
    for key in (SUBJECT, f"{SUBJECT}{SEED0}"):
        if key in block:
            return key
    return None


def short_answer(tables: Sequence[tuple[str, Results]]) -> list[str]:
    """Per opponent group (InST, SVDiff only, the base model, the baselines): the metrics on
    which the subject is better or worse beyond the seed noise, naming the table of each."""
    groups: dict[str, dict[str, dict[str, list[str]]]] = {}  # group → status → table → metrics
    others: dict[str, dict[str, int]] = {}  # group → {"inconclusive": k, "unjudged": m}
    for name, rows in tables:
        subject = _subject(rows)
        if subject is None:
            continue
        for other in rows:
            if other == subject:
                continue
            core = base_method(other)
            group = label(core) if core in OPPONENTS else "the baselines"
            found = groups.setdefault(group, {"better": {}, "worse": {}})
            rest = others.setdefault(group, {"inconclusive": 0, "unjudged": 0})
            for metric in METRICS:
                c = compare(rows, subject, other, metric)
                if c is None or c.status == "unequal N":
                    continue
                if c.status in rest:
                    rest[c.status] += 1
                    continue
                what = metric.name + (f" vs {label(other)}" if group == "the baselines" else "")
                found[c.status].setdefault(name, []).append(what)
    lines = []
    for group, found in groups.items():
        rest = others[group]
        counts = ", ".join(
            f"{k} {'comparison' if k == 1 else 'comparisons'} {w}"
            for w, k in (("inside the seed noise", rest["inconclusive"]),
                         ("without a seed spread (one training seed each)", rest["unjudged"]))
            if k
        )  # fmt: skip
        parts = [
            f"**{status}** on "
            + "; ".join(f"{', '.join(ms)} ({table})" for table, ms in by_table.items())
            for status, by_table in found.items()
            if by_table
        ]
        if not parts:
            lines.append(f"- vs {group}: no difference can be claimed — {counts}.")
        else:
            lines.append(
                f"- vs {group}: "
                + "; ".join(parts)
                + (f" — besides, {counts}" if counts else "")
                + "."
            )
    return lines


def _calibration(block: Results, refs: Results) -> list[str]:
    """Where the rows of one N fall against the reference rows of that N (FID)."""
    lines = []
    photos = refs.get("ref:photos")
    if photos:
        fid = photos[0]["fid"]
        worse = [label(m) for m, runs in block.items() if np.mean([r["fid"] for r in runs]) > fid]
        lines.append(
            f"- Returning the test photos unchanged scores FID {fid:.1f}: "
            + (
                f"{', '.join(worse)} score a higher (worse) FID than doing nothing."
                if worse
                else "every row scores a lower FID than doing nothing."
            )
        )
    oracle = refs.get("ref:oracle")
    if oracle:
        lines.append(
            f"- The oracle outputs (the ideal stylization) score FID {oracle[0]['fid']:.1f} at "
            "this N: the floor a perfect method could reach with this style set."
        )
    return lines


def verdict_section(results: Results, *, pocket_results: Results | None = None) -> str:
    """The report's "Verdict" (Markdown), computed from Table I and the pocket table.

    Args:
        results: Table I's rows (methods, their ``@seed0`` rows, reference rows).
        pocket_results (*optional*): the pocket experiment's rows (all at one N).
    """
    refs = {m: r for m, r in results.items() if is_reference(m)}
    tables: list[tuple[str, Results, Results]] = []
    for n, block in blocks_by_n(results).items():
        if n is None:
            continue
        rows = {m: r for m, r in block.items() if not is_reference(m)}
        at_n = {m: r for m, r in refs.items() if m in block}
        if _subject(rows) is not None and len(rows) > 1:
            tables.append((f"Table I at N = {n}", rows, at_n))
    if pocket_results:
        tables.append(("Pocket model table", dict(pocket_results), {}))
    lines = [
        "## Verdict",
        "",
        "**Question:** does SVD-InST beat InST, SVDiff alone and the baselines — on which "
        "metric, and by how much against the seed spread?",
        "",
        f"Rows are compared only at equal N. A gap counts when it exceeds {NOISE_MULTIPLE:g}× "
        "the pooled seed spread (sample std over training seeds); inside it the comparison is "
        "inconclusive; rows with one training seed each have no spread and are not judged.",
        "",
    ]
    if not tables:
        return "\n".join(
            [*lines, "- No SVD-InST row with another row of equal N: nothing to judge.", ""]
        )
    subject_name = label(_subject(tables[0][1]) or SUBJECT)
    lines += [
        f"**Answer** ({subject_name}; each table compares rows of its own N):",
        "",
        *short_answer([(name, rows) for name, rows, _ in tables]),
        "",
    ]
    for name, rows, at_n in tables:
        subject = _subject(rows)
        assert subject is not None
        budgets = {m: w for m, r in rows.items() if (w := _budget_words(r)) is not None}
        untrained = [m for m, r in rows.items() if is_untrained(r) or m.startswith("base")]
        lines += [f"### {name}", ""]
        lines += verdict_block(rows, labels=label, untrained=untrained, budgets=budgets,
                               subject=subject)  # fmt: skip
        lines += [*_calibration(rows, at_n), ""]
    return "\n".join(lines)


def limitations_section(
    results: Results, *, profile_name: str, model: str, resolution: int, quality_claims: bool
) -> str:
    """The report's "Limitations" paragraph: style set, profile, N, seeds, budgets (Markdown)."""
    methods = {m: r for m, r in results.items() if not is_reference(m)}
    first = next(iter(methods.values()))[0]
    ns = sorted({r["N"] for runs in methods.values() for r in runs})
    seeds = sorted({len(r) for m, r in methods.items() if not is_untrained(r)})
    weak = [
        f"{label(m)} ({_budget_words(r)})"
        for m, r in methods.items()
        if not m.startswith(DIFFUSION_METHODS)  # the baselines
        and (
            0 < (r[0].get("train_steps") or 0) < WEAK_BUDGET
            or "random" in str(r[0].get("backbone"))
        )
    ]
    lpips = any(
        metric_values(r, m) is not None
        for r in methods.values()
        for m in METRICS
        if "LPIPS" in m.name
    )
    text = [
        "## Limitations",
        "",
        f"The style set is the documented mural *proxy* (a known filter, not real murals): "
        f"{first.get('n_reference', '?')} style images as the FID/KID reference, so FID is "
        "dominated by small-sample bias (compare it only at equal N; the reference rows "
        f"calibrate it). Profile `{profile_name}` (model `{model}`, {resolution} px)"
        + (
            " makes no claim about SD-1.4's quality."
            if not quality_claims
            else " is the report's setting."
        )
        + f" N = {', '.join(map(str, ns))} generated images per row; "
        f"{'/'.join(map(str, seeds)) or 'no'} training seed(s) per trained method.",
    ]
    if weak:
        text.append(
            "Baselines trained with a small budget or a random VGG backbone are not the "
            f"published methods: {'; '.join(weak)}."
        )
    if not lpips:
        text.append("LPIPS (and ArtFID) are unavailable: no AlexNet weights offline.")
    return text[0] + "\n\n" + " ".join(text[2:]) + "\n"
