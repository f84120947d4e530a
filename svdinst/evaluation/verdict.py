"""The report's Verdict: does SVD-InST beat InST, SVDiff alone, the base model and the baselines?

Computed from a results table (method → one metrics dict per training seed, as
:func:`svdinst.evaluation.report.evaluate_methods` returns), never written by hand:

- rows are compared **only at equal N** (FID is biased upwards at small N, so a gap between rows
  of different N is partly a gap in N): :func:`compare` returns status ``"unequal N"`` instead;
- a gap counts when it exceeds :data:`NOISE_MULTIPLE` × the pooled seed spread (the sample std
  over training seeds, pooled over the rows that have one); inside it the comparison is
  *inconclusive*; with no seed spread at all it is *unjudged* (the gap is still shown);
- the best row of each metric is named, with its training budget, so a finding such as "an
  untrained method scores best" is stated whenever the numbers say so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

NOISE_MULTIPLE = 2.0  # a gap counts beyond 2 pooled seed stds (≈ 95 % for a normal spread)
SUBJECT = "svd-inst"  # the method the course asks about
# The course's own diffusion methods ("base": the model untrained), the subject first; the
# report, its conclusions and Fig. 3 tell them from the baselines by this one tuple.
DIFFUSION_METHODS = (SUBJECT, "inst", "svdiff", "base")
OPPONENTS = DIFFUSION_METHODS[1:]  # asked about by name, before the baselines


@dataclass(frozen=True)
class Metric:
    """One column the verdict reads."""

    keys: tuple[str, ...]  # path into a metrics dict, e.g. ("oracle", "ssim")
    name: str  # how the report names it
    lower_better: bool  # FID/KID/LPIPS distances: lower is better


METRICS = (
    Metric(("fid",), "FID", True),
    Metric(("kid", "mean"), "KID", True),
    Metric(("oracle", "psnr"), "PSNR to oracle", False),
    Metric(("oracle", "ssim"), "SSIM to oracle", False),
    Metric(("oracle", "lpips"), "LPIPS to oracle", True),
    Metric(("content_lpips",), "content LPIPS", True),
    Metric(("lpips_diversity",), "LPIPS diversity", False),
)


def nested_get(mapping: Mapping[str, Any], *keys: str) -> Any:
    """``mapping[k1][k2]…`` of a metrics dict, or `None` when a key or a level is missing."""
    value: Any = mapping
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def metric_values(runs: Sequence[Mapping[str, Any]], metric: Metric) -> list[float] | None:
    """The metric of every training seed, or `None` when any is missing or not a number."""
    out = []
    for run in runs:
        value = nested_get(run, *metric.keys)  # None (missing) is not a number below
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return None
        out.append(float(value))
    return out or None


def row_n(runs: Sequence[Mapping[str, Any]]) -> int | None:
    """The N of a row (number of generated images); `None` when its seeds disagree."""
    ns = {r.get("N") for r in runs}
    return ns.pop() if len(ns) == 1 else None


def pooled_std(*samples: Sequence[float]) -> float:
    """√(mean of the sample variances) of the samples with ≥ 2 values; NaN when none has."""
    variances = [np.var(s, ddof=1) for s in samples if len(s) > 1]
    return float(np.sqrt(np.mean(variances))) if variances else float("nan")


def beyond_noise(gap: float, spread: float) -> bool:
    """Whether ``gap`` exceeds :data:`NOISE_MULTIPLE` seed spreads; never without a spread (NaN)."""
    return not math.isnan(spread) and gap > NOISE_MULTIPLE * spread


@dataclass(frozen=True)
class Comparison:
    """``a`` against ``b`` on one metric."""

    a: str
    b: str
    metric: Metric
    status: str  # "better", "worse", "inconclusive", "unjudged" or "unequal N"
    mean_a: float = float("nan")
    mean_b: float = float("nan")
    spread: float = float("nan")  # pooled sample std over training seeds
    n_a: int | None = None
    n_b: int | None = None

    @property
    def gap(self) -> float:
        """How much better ``a`` is (positive) or worse (negative), in the metric's units."""
        diff = self.mean_a - self.mean_b
        return -diff if self.metric.lower_better else diff

    @property
    def sigmas(self) -> float:
        """The gap in units of the pooled spread (NaN without one)."""
        return self.gap / self.spread if self.spread > 0 else float("nan")

    def cell(self) -> str:
        """A table cell: the signed gap, its size against the spread, and the status."""
        if self.status == "unequal N":
            return f"not compared (N = {self.n_a} vs {self.n_b})"
        digits = 4 if abs(self.mean_a) < 1 else (2 if abs(self.mean_a) < 100 else 1)
        size = "" if math.isnan(self.sigmas) else f", {self.sigmas:+.1f}σ"
        mark = {"better": "**better**", "worse": "**worse**"}.get(self.status, self.status)
        return f"{self.gap:+.{digits}f}{size}: {mark}"


def compare(
    results: Mapping[str, Sequence[Mapping[str, Any]]], a: str, b: str, metric: Metric
) -> Comparison | None:
    """Compare method ``a`` with ``b`` on ``metric``; `None` when either lacks the metric.

    Equal N is required; a gap counts beyond :data:`NOISE_MULTIPLE` pooled seed stds.
    """
    if a not in results or b not in results:
        return None
    va, vb = metric_values(results[a], metric), metric_values(results[b], metric)
    if va is None or vb is None:
        return None
    na, nb = row_n(results[a]), row_n(results[b])
    if na is None or na != nb:
        return Comparison(a, b, metric, "unequal N", n_a=na, n_b=nb)
    spread = pooled_std(va, vb)
    base = Comparison(a, b, metric, "", float(np.mean(va)), float(np.mean(vb)), spread, na, nb)
    if math.isnan(spread):
        status = "unjudged"
    elif beyond_noise(abs(base.gap), spread):
        status = "better" if base.gap > 0 else "worse"
    else:
        status = "inconclusive"
    return Comparison(a, b, metric, status, base.mean_a, base.mean_b, spread, na, nb)


Labels = Mapping[str, str] | Callable[[str], str]  # method → display name


def label_of(method: str, labels: Labels) -> str:
    """A method's display name from a mapping (falling back to the key) or a function."""
    return labels(method) if callable(labels) else labels.get(method, method)


def comparison_table(
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    subject: str,
    opponents: Sequence[str],
    labels: Labels,
) -> str:
    """Markdown: one row per opponent at the subject's N, one column per metric both have."""
    rows = {o: [compare(results, subject, o, m) for m in METRICS] for o in opponents}
    used = [i for i, m in enumerate(METRICS) if any(rows[o][i] is not None for o in rows)]
    if not rows or not used:
        return ""
    arrow = {True: " ↓", False: " ↑"}
    head = (
        f"| {label_of(subject, labels)} vs | N | "
        + " | ".join(METRICS[i].name + arrow[METRICS[i].lower_better] for i in used)
        + " |\n|---|---|"
        + "---|" * len(used)
        + "\n"
    )
    lines = []
    for o, cmps in rows.items():
        cells = [cmps[i].cell() if cmps[i] is not None else "—" for i in used]
        lines.append(f"| {label_of(o, labels)} | {row_n(results[o])} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def best_rows(
    results: Mapping[str, Sequence[Mapping[str, Any]]],
) -> dict[int, dict[str, tuple[str, float]]]:
    """For each N and metric, the method with the best mean: ``{N: {metric name: (method, mean)}}``."""
    out: dict[int, dict[str, tuple[str, float]]] = {}
    for method, runs in results.items():
        n = row_n(runs)
        if n is None:
            continue
        for metric in METRICS:
            values = metric_values(runs, metric)
            if values is None:
                continue
            mean = float(np.mean(values))
            best = out.setdefault(n, {}).get(metric.name)
            if best is None or (mean < best[1] if metric.lower_better else mean > best[1]):
                out[n][metric.name] = (method, mean)
    return out


def summary_sentence(
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    subject: str,
    opponent: str,
    labels: Labels,
) -> str | None:
    """ "SVD-InST vs InST (N = 6): better on …; worse on …; within noise on …" (`None` if no metric)."""
    cmps = [c for m in METRICS if (c := compare(results, subject, opponent, m)) is not None]
    if not cmps:
        return None
    who = f"{label_of(subject, labels)} vs {label_of(opponent, labels)}"
    if all(c.status == "unequal N" for c in cmps):
        return f"{who}: not compared — unequal N ({cmps[0].n_a} vs {cmps[0].n_b})."
    groups: dict[str, list[str]] = {}
    for c in cmps:
        groups.setdefault(c.status, []).append(c.metric.name)
    words = {
        "better": "**better** beyond the seed noise on",
        "worse": "**worse** beyond the seed noise on",
        "inconclusive": "within the seed noise (inconclusive) on",
        "unjudged": "no seed spread to judge (one training seed each) on",
    }
    parts = [f"{words[s]} {', '.join(groups[s])}" for s in words if s in groups]
    return f"{who} (N = {cmps[0].n_a}): " + "; ".join(parts) + "."


def untrained_wins(
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    untrained: Sequence[str],
    labels: Labels,
) -> list[str]:
    """One sentence per untrained row that beats trained rows beyond the seed noise."""
    lines = []
    trained = [m for m in results if m not in untrained]
    for u in untrained:
        beaten: dict[str, list[str]] = {}
        for t in trained:
            for metric in METRICS:
                c = compare(results, u, t, metric)
                if c is not None and c.status == "better":
                    beaten.setdefault(label_of(t, labels), []).append(metric.name)
        if beaten:
            lines.append(
                f"- {label_of(u, labels)}, with no training, beats "
                + "; ".join(f"{t} on {', '.join(ms)}" for t, ms in beaten.items())
                + " beyond the seed noise."
            )
    return lines


def verdict_block(
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    labels: Labels,
    untrained: Sequence[str] = (),
    budgets: Mapping[str, str] | None = None,
    subject: str = SUBJECT,
) -> list[str]:
    """Markdown lines: the answer per opponent, the comparison table and the best rows.

    Args:
        results: method → metrics per training seed (rows of several N are fine: only rows of
            the subject's N are compared; the others are listed as not compared).
        labels: method → display name (a mapping or a function).
        untrained (`Sequence[str]`, defaults to ``()``): methods trained for zero steps here.
        budgets (`Mapping[str, str]`, *optional*): method → its training budget in words.
        subject (`str`, defaults to ``"svd-inst"``): the method asked about.
    """
    if subject not in results:
        return [f"- No {label_of(subject, labels)} row: nothing to judge."]
    n = row_n(results[subject])
    named = [o for o in OPPONENTS if o in results and o != subject]
    others = [m for m in results if m not in (subject, *named)]
    equal = [o for o in [*named, *others] if row_n(results[o]) == n]
    unequal = [o for o in [*named, *others] if o not in equal]
    lines = [s for o in equal if (s := summary_sentence(results, subject, o, labels)) is not None]
    lines = [f"- {s}" for s in lines]
    if unequal:
        lines.append(
            "- Not compared (unequal N): "
            + ", ".join(f"{label_of(o, labels)} (N = {row_n(results[o])})" for o in unequal)
            + f" against N = {n}."
        )
    table = comparison_table(results, subject, equal, labels)
    if table:
        lines += [
            "",
            f"Gap = how much better {label_of(subject, labels)} is (+) or worse (−), and in "
            f"units of the pooled seed std (σ); beyond {NOISE_MULTIPLE:g}σ it counts.",
            "",
            table,
        ]
    budgets = budgets or {}
    for size, best in sorted(best_rows(results).items()):
        found = [
            f"{name}: {label_of(m, labels)}"
            + (f" ({budgets[m]})" if m in budgets else "")
            + (
                " — **untrained**"
                if m in untrained and "untrained" not in label_of(m, labels) + budgets.get(m, "")
                else ""
            )
            for name, (m, _) in best.items()
        ]
        lines.append(f"- Best at N = {size} — " + "; ".join(found) + ".")
    lines += untrained_wins(results, untrained, labels)
    return lines
