"""How long each notebook takes on a free Colab T4: measured per-unit times × a profile's counts.

The ``course`` profile's counts (:mod:`svdinst.course.profiles`) are chosen with this arithmetic,
and ``tests/course/test_profiles.py`` recomputes it, so a changed count or a new measurement that
breaks the budget (≤ 30 min per notebook, ≤ 3 h in all) fails a test. No timing is measured here.

Method — one unit of work (a training step, a stylized image…) costs on a T4::

    HOST_FACTOR × host_s  +  unet_evals ÷ T4_UNET_EVALS_PER_S  +  card_gpu_s × CARD_TO_T4

* ``host_s``: the unit's wall time measured on the rehearsal card (:data:`MEASURED_ON`), counted
  whole although it includes that card's own GPU time (conservative), × :data:`HOST_FACTOR` for
  Colab's 2 slow vCPUs (an assumption, not a measurement).
* ``unet_evals``: the unit's GPU work in 512-px SD-1.x UNet evaluations, at the T4 rate of a
  published figure (:data:`T4_SOURCE`: 1.77 it/s for SD img2img at batch 4 with CFG, fp16).
* ``card_gpu_s``: GPU work that is not a UNet (the baselines' networks), scaled by the ratio
  of the same kind of figure on both cards (:data:`CARD_TO_T4`): the published T4 seconds per
  img2img image ÷ the kit's own measured seconds per img2img image on the rehearsal card.

Units that ``benchmarks/rehearsal.py`` measures again on the GPU replace :data:`UNITS` there.
"""

from __future__ import annotations

from dataclasses import dataclass

from svdinst.course.profiles import Profile

NOTEBOOK_LIMIT_S = 30 * 60  # a learner's sitting per notebook on a free Colab T4
COURSE_LIMIT_S = 3 * 3600  # the whole course 01 → 07
MEASURED_ON = "NVIDIA H200, reports/benchmarks.md 'T4 rehearsal (course preset)', 2026-11-30"
T4_SOURCE = (
    "diffusers docs, 'PyTorch 2.0' optimization page (docs/source/en/optimization/torch2.0.md), "
    "table 'T4 (batch size: 4)': SD img2img 1.77 it/s, fp16, torch 2.0, no compile"
)
T4_IT_PER_S = 1.77  # published: one denoising step of a batch of 4 images at 512 px
T4_BATCH = 4  # the published figure's batch (the kit stylizes at batch 4 too)
T4_UNET_EVALS_PER_S = T4_IT_PER_S * T4_BATCH * 2  # CFG: two UNet evaluations per image and step
HOST_FACTOR = 2.0  # assumption: Colab's 2 vCPUs run Python/launch/I-O work at half the speed
STYLIZE_EVALS = 50 * 0.8 * 2 + 4  # 50 DDIM steps at strength 0.8, CFG; + ~4 for VAE enc/dec
TXT2IMG_EVALS = 50 * 2  # 03's generation grid: 50 steps from noise, CFG
# Training step at batch 1 with gradient checkpointing: forward, recomputed forward and a backward
# of ~2 forwards = 4 UNet evaluations; the spectral modes rebuild W = U·diag(σ+δ)·Vᵀ each step, and
# cost what their measured step-time ratio to inst says (train_step.py: 0.158 / 0.085 and 0.190 / 0.085).
TRAIN_EVALS = {"inst": 4.0, "svdiff": 4.0 * 0.158 / 0.085, "svd-inst": 4.0 * 0.190 / 0.085}
CARD_STYLIZE_S = 0.845  # measured s per img2img image (inst) on MEASURED_ON, 50 steps, batch 4
CARD_TO_T4 = (STYLIZE_EVALS - 4) / T4_UNET_EVALS_PER_S / CARD_STYLIZE_S  # same kind of figure


@dataclass(frozen=True)
class UnitCost:
    """What one unit of work costs (see the module docstring for the formula)."""

    host_s: float  # measured wall seconds per unit on the rehearsal card
    unet_evals: float = 0.0  # GPU work in 512-px UNet evaluations, timed at the T4's rate
    card_gpu_s: float = 0.0  # other GPU work in seconds on the rehearsal card, × CARD_TO_T4

    def t4_seconds(self, card_to_t4: float = CARD_TO_T4) -> float:
        """Estimated seconds of this unit on a free Colab T4."""
        gpu = self.unet_evals / T4_UNET_EVALS_PER_S + self.card_gpu_s * card_to_t4
        return HOST_FACTOR * self.host_s + gpu


# Per-unit costs from the last full-size rehearsal (MEASURED_ON): median step gaps of the runs'
# loss logs, seconds per image of the outputs folders, notebook wall ÷ units for 06 and 07
# (upper bounds).
UNITS: dict[str, UnitCost] = {
    "train inst": UnitCost(0.259, TRAIN_EVALS["inst"]),
    "train svdiff": UnitCost(0.412, TRAIN_EVALS["svdiff"]),
    "train svd-inst": UnitCost(0.478, TRAIN_EVALS["svd-inst"]),
    "stylize svd-inst": UnitCost(2.193, STYLIZE_EVALS),  # includes merging δ from fp32 weights
    "stylize inst": UnitCost(0.845, STYLIZE_EVALS),
    "stylize svdiff": UnitCost(0.732, STYLIZE_EVALS),
    # Figure grids (H100, 2026-11-26). The fixed costs below already hold them (they are a
    # notebook's wall time less its measured units), so they count twice: a conservative margin.
    "figure img2img": UnitCost(0.55, STYLIZE_EVALS),  # one image of a notebook's figure grid
    "figure txt2img": UnitCost(0.5, TXT2IMG_EVALS),
    "baseline step (all six)": UnitCost(2.128, card_gpu_s=2.128),  # 06 wall ÷ steps: all GPU
    "metrics image": UnitCost(0.939),  # 07 wall ÷ images: decoding, Inception, LPIPS
    # Fixed cost of a notebook: loading models, building folders, SVD, figures — its wall time at
    # the rehearsal minus the units above (host work: × HOST_FACTOR, no GPU rate).
    "fixed 01": UnitCost(37.645),
    "fixed 02": UnitCost(41.711),
    "fixed 03": UnitCost(50.061),
    "fixed 04": UnitCost(78.132),
    "fixed 05": UnitCost(76.963),
}
MODES = ("inst", "svdiff", "svd-inst")
BASELINES = 6  # methods notebook 06 trains or applies, and 07 evaluates
# Figure images each notebook makes with its parameters' defaults (03 SEEDS, 04 SHIFT_SCALES,
# 05 STRENGTHS + SHIFT_SCALES + CONTENT_STRENGTHS).
FIGURES = {"03": ("figure txt2img", 3), "04": ("figure img2img", 4), "05": ("figure img2img", 13)}


def notebook_work(
    profile: Profile, photos: int | None = None
) -> dict[str, list[tuple[str, float]]]:
    """The units of work each notebook does on ``profile``: ``{"03": [(unit, count), …], …}``.

    Each notebook is counted as run in course order (03 trains inst; 04 trains all three modes,
    so it also stands alone; 05 and 07 find their runs trained).

    Args:
        profile (`Profile`): gives the counts.
        photos (`int`, *optional*): test photos in the data folder; defaults to
            ``profile.test_photos`` (the profile's cap: the worst case).
    """
    n_photos = photos if photos is not None else (profile.test_photos or 711)
    if profile.test_photos is not None:
        n_photos = min(n_photos, profile.test_photos)
    images = n_photos * profile.stylize_seeds * len(profile.training_seeds)
    steps = profile.train_steps * len(profile.training_seeds)
    work: dict[str, list[tuple[str, float]]] = {
        "01": [("fixed 01", 1)],
        "02": [("fixed 02", 1)],
        "03": [("fixed 03", 1), ("train inst", steps)],
        "04": [("fixed 04", 1)] + [(f"train {m}", steps) for m in MODES],
        "05": [("fixed 05", 1)] + [(f"stylize {m}", images) for m in MODES],
        "06": [("baseline step (all six)", profile.baseline_steps)],
        "07": [("metrics image", len(MODES) * images + BASELINES * n_photos)],
    }
    for number, (unit, count) in FIGURES.items():
        work[number].append((unit, count))
    return work


def t4_estimate(
    profile: Profile,
    units: dict[str, UnitCost] | None = None,
    card_to_t4: float = CARD_TO_T4,
    photos: int | None = None,
) -> dict[str, float]:
    """Estimated seconds of each notebook on a free Colab T4 (``{"01": s, …}``).

    Args:
        profile (`Profile`): the counts.
        units (`dict[str, UnitCost]`, *optional*): per-unit costs; defaults to :data:`UNITS`.
        card_to_t4 (`float`): T4 ÷ rehearsal-card time for GPU work that is not a UNet.
        photos (`int`, *optional*): see :func:`notebook_work`.
    """
    units = {**UNITS, **(units or {})}
    return {
        number: sum(units[unit].t4_seconds(card_to_t4) * count for unit, count in work)
        for number, work in notebook_work(profile, photos).items()
    }


def over_budget(estimate: dict[str, float]) -> list[str]:
    """What breaks the budget (a notebook over 30 min, the course over 3 h); empty when none."""
    late = [
        f"notebook {n}: {s / 60:.1f} min > {NOTEBOOK_LIMIT_S / 60:.0f}"
        for n, s in estimate.items()
        if s > NOTEBOOK_LIMIT_S
    ]
    total = sum(estimate.values())
    if total > COURSE_LIMIT_S:
        late.append(f"course: {total / 3600:.2f} h > {COURSE_LIMIT_S / 3600:.0f}")
    return late


def budget_table(estimate: dict[str, float]) -> str:
    """Markdown: each notebook's T4 estimate in minutes and the total."""
    rows = ["| notebook | T4 estimate (min) |", "|---|---|"]
    rows += [f"| {n} | {s / 60:.1f} |" for n, s in estimate.items()]
    rows.append(f"| **total** | **{sum(estimate.values()) / 60:.0f}** |")
    return "\n".join(rows)
