"""The checks behind the exercises of chapters 05–07: SDEdit's schedule, the baselines, FID/KID.

Same contract as :mod:`svdinst.course.exercises`: answer first, truth recomputed by the kit (the
diffusers pipeline the notebook stylized with, the baselines' own functions, the evaluation's
``frechet_distance`` and torch-fidelity's KID), one printed line, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from svdinst.baselines.fast_style import gram_matrix
from svdinst.baselines.vgg import adain, mean_std
from svdinst.course.grading import Mismatch, exercise, relative_error, require_close
from svdinst.evaluation.metrics import frechet_distance

# ------------------------------------------------------------------------------ 05 stylize


def first_timestep(pipe: Any, strength: float, steps: int) -> tuple[int, int]:
    """(first timestep, denoising steps) of diffusers' img2img pipeline ``pipe`` (its own code)."""
    pipe.scheduler.set_timesteps(steps)  # every pipeline call sets them again: nothing is lost
    timesteps, n = pipe.get_timesteps(steps, strength, "cpu")
    return int(timesteps[0]), int(n)


@exercise("05-a", "DDIM's `steps` timesteps are spaced T // steps apart (plus steps_offset); img2img "
          "keeps the last int(steps · strength) of them: scheduler.timesteps[steps − int(steps · strength)].")  # fmt: skip
def check_first_timestep(answer: Any, pipe: Any, strength: float, steps: int) -> str:
    """05-a: the timestep SDEdit starts from at ``strength`` with ``steps`` DDIM steps."""
    t0, n = first_timestep(pipe, strength, steps)
    if int(answer) != t0:
        raise Mismatch(f"you said t = {int(answer)}, but the pipeline starts at t = {t0}.")
    total = pipe.scheduler.config.num_train_timesteps
    return (
        f"strength {strength} starts at t = {t0} of {total} and runs {n} of the {steps} DDIM steps."
    )


@exercise("05-b", "√ᾱ_t = scheduler.alphas_cumprod[t] ** 0.5 at the first timestep of 05-a.")
def check_signal_kept(answer: Any, pipe: Any, strength: float, steps: int) -> str:
    """05-b: √ᾱ at SDEdit's first timestep — how much of the photo's latent the start keeps."""
    t0, _ = first_timestep(pipe, strength, steps)
    want = float(pipe.scheduler.alphas_cumprod[t0]) ** 0.5
    require_close("your √ᾱ", answer, want, rtol=1e-4)
    return (
        f"at t = {t0} the start is {want:.3f}·z₀ + {(1 - want**2) ** 0.5:.3f}·ε: "
        f"the noise carries {(1 - want**2) / want**2:.2g}× the photo's variance."
    )


# ---------------------------------------------------------------------------- 06 baselines


def _features(*shapes: tuple[int, ...], seed: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g) * 2 + 1 for s in shapes]


@exercise("06-a", "per sample and channel: mean and std over H·W (torch's unbiased var + 1e-5, then "
          "sqrt, as the AdaIN code); AdaIN(x, y) = σ(y)·(x − μ(x))/σ(x) + μ(y).")  # fmt: skip
def check_adain(answer: Any) -> str:
    """06-a: ``answer(content, style)`` must be AdaIN of two ``(N, C, H, W)`` feature maps."""
    content, style = _features((2, 8, 5, 7), (2, 8, 6, 6))
    want = adain(content, *mean_std(style))
    got = torch.as_tensor(answer(content, style))
    error = relative_error(got, want) if got.shape == want.shape else float("inf")
    if error > 1e-4:
        raise Mismatch(f"your AdaIN differs from the kit's by {error:.2%} (relative).")
    mean, std = mean_std(got)
    target_mean, target_std = mean_std(style)
    gap = float((mean - target_mean).abs().max() + (std - target_std).abs().max())
    return f"matches the kit; the output's channel mean and std equal the style's (gap {gap:.0e})."


@exercise(
    "06-b", "flatten to (N, C, H·W), then F Fᵀ divided by C·H·W (the normalised Gram matrix)."
)
def check_gram(answer: Any) -> str:
    """06-b: ``answer(features)`` must be the normalised Gram matrix of ``(N, C, H, W)`` features."""
    (feat,) = _features((2, 6, 4, 5))
    want = gram_matrix(feat)
    got = torch.as_tensor(answer(feat))
    if got.shape != want.shape:
        raise Mismatch(f"your Gram matrix has shape {tuple(got.shape)}, not {tuple(want.shape)}.")
    error = relative_error(got, want)
    if error > 1e-5:
        ratio = float(got.norm() / want.norm())
        raise Mismatch(f"off by {error:.1%} (relative; your norm is {ratio:.3g}× the kit's).")
    return (
        "matches fast-style-transfer's Gram matrix: style as channel correlations, position-free."
    )


# ------------------------------------------------------------------------------ 07 metrics


def exercise_features(
    n: int = 200, dim: int = 16, seed: int = 7
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two small feature sets for the FID/KID exercises: Gaussians that differ in mean and spread.

    Small ``dim`` keeps a learner's ``scipy.linalg.sqrtm`` instant; the formulas are those of the
    2048-d Inception features.
    """
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, dim, generator=g, dtype=torch.float64)
    mix = torch.eye(dim, dtype=torch.float64) + 0.3 * torch.randn(
        dim, dim, generator=g, dtype=torch.float64
    )
    b = torch.randn(n, dim, generator=g, dtype=torch.float64) @ mix + 0.5
    return a, b


@exercise("07-a", "FID = ‖μ₁ − μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2 Tr (Σ₁Σ₂)^½ with np.cov(f, rowvar=False) "
          "(n − 1 in the denominator) and scipy.linalg.sqrtm (keep its real part).")  # fmt: skip
def check_fid(answer: Any, f1: torch.Tensor, f2: torch.Tensor) -> str:
    """07-a: FID of two feature sets, against the kit's ``frechet_distance``."""
    want = frechet_distance(torch.as_tensor(f1), torch.as_tensor(f2))
    require_close("your FID", answer, want, rtol=1e-4)
    return f"FID = {want:.4f}, the kit's frechet_distance to 4 digits."


def kid(f1: torch.Tensor, f2: torch.Tensor) -> float:
    """torch-fidelity's KID with one subset of all the features (so no random subsets)."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    n = min(len(f1), len(f2))
    out = kid_features_to_metric(
        torch.as_tensor(f1)[:n],
        torch.as_tensor(f2)[:n],
        kid_subsets=1,
        kid_subset_size=n,
        verbose=False,
    )
    return float(out["kernel_inception_distance_mean"])


@exercise("07-b", "k(x, y) = (xᵀy / d + 1)³; unbiased MMD² = mean of K_xx off its diagonal + mean of "
          "K_yy off its diagonal − 2 · mean of K_xy.")  # fmt: skip
def check_kid(answer: Any, f1: torch.Tensor, f2: torch.Tensor) -> str:
    """07-b: KID (unbiased MMD², cubic kernel) of two equal-size feature sets, against torch-fidelity."""
    want = kid(f1, f2)
    require_close("your KID", answer, want, rtol=1e-4, atol=1e-9)
    return f"KID = {want:.5f}, torch-fidelity's value: unbiased, so it can dip below 0 when the sets agree."


CHECKS: dict[str, Callable[..., Any]] = {
    c.exercise_id: c  # type: ignore[attr-defined]
    for c in (
        check_first_timestep,
        check_signal_kept,
        check_adain,
        check_gram,
        check_fid,
        check_kid,
    )
}
