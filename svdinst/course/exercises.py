"""The checks behind the notebooks' exercises (chapters 01–04: data, SVD, InST, joint training).

Each ``check_*`` takes the learner's answer first (the unsolved template leaves it ``...``) and
then what it needs from the notebook (a run folder, a module, a photo); it recomputes the truth
from the kit or the model — published constants only where they are the point, and then
checked against the kit too — and prints one ✅ / ❌ line (:mod:`svdinst.course.grading`).
Chapters 05–07 live in :mod:`svdinst.course.exercises_eval`. Solutions:
``notebooks/solutions/<notebook>.py`` in the repository.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from svdinst.course.grading import Mismatch, exercise, relative_error, require_close
from svdinst.data.mural import MuralConfig, mural_stages, palette_family
from svdinst.formats.run_folder import RunFolder
from svdinst.models.layouts import SDLayoutConfig, sd_layout_modules
from svdinst.spectral.io import read_spectral_shift_file
from svdinst.spectral.layer import SpectralShiftLayer
from svdinst.spectral.model import spectral_shift_layout
from svdinst.training.inversion import (
    ImageToToken,
    ImageToTokenConfig,
    count_parameters,
    load_image_to_token,
)

# Published counts (SVDiff on SD-1.4; InST's "3.7 M trainable"): the checks recompute both from
# the kit's own SD-1.4 layout and say so if they ever disagree.
SD14_SPECTRAL_LAYERS = 282
SD14_SPECTRAL_SHIFTS = 222_696
INST_SD_PARAMETERS = 3_737_856


@functools.lru_cache(maxsize=1)
def sd14_meta_modules() -> dict[str, torch.nn.Module]:
    """SD-1.4's four networks on the ``meta`` device: exact shapes, no weights (built once)."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        return sd_layout_modules(SDLayoutConfig.sd14())


def sd14_shift_count() -> tuple[int, int]:
    """(layers, shifts) that :func:`~svdinst.spectral.add_spectral_shifts` gives SD-1.4's UNet."""
    layout = spectral_shift_layout(sd14_meta_modules()["unet"])
    return len(layout), sum(k for _, k in layout.values())


def _published(name: str, kit: int, published: int) -> str:
    return "" if kit == published else f" (the paper says {published:,} for {name})"


# ----------------------------------------------------------------------------------- 01 data


@exercise("01-b", "the VAE halves the image at every down block but the last: "
          "512 / 2 ** (len(vae.config.block_out_channels) - 1).")  # fmt: skip
def check_latent_side(answer: Any, vae: torch.nn.Module, image_side: int = 512) -> str:
    """01-b: the side of the latent the VAE makes from an ``image_side`` px image.

    The truth is the shape of ``vae.encode`` run on an empty ``meta`` tensor: no memory, no
    arithmetic on the config.
    """
    device = next(vae.parameters()).device
    with torch.no_grad():
        x = torch.empty(
            1, 3, image_side, image_side, device="meta" if device.type == "meta" else device
        )
        side = int(vae.encode(x).latent_dist.mean.shape[-1])
    if int(answer) != side:
        raise Mismatch(f"you said {answer}, but the VAE's latent is {side}×{side}.")
    return (
        f"a {image_side} px image becomes a {side}×{side}×4 latent — the UNet works on "
        f"{image_side**2 * 3 / (side * side * 4):.0f}× fewer numbers than the image's RGB values."
    )


@exercise("01-a", "np.unique(np.asarray(stages['posterised']).reshape(-1, 3), axis=0) counts the "
          "colours; palette_family(MuralConfig()) returns the names and colours on offer.")  # fmt: skip
def check_palette_colours(answer: Any, photo: Image.Image) -> str:
    """01-a: ``(colours used by the posterised stage of photo, colours in the palette)``."""
    stage = np.asarray(mural_stages(photo, seed=0)["posterised"])
    used = len(np.unique(stage.reshape(-1, 3), axis=0))
    offered = len(palette_family(MuralConfig())[0])
    got = tuple(int(v) for v in answer)
    if got != (used, offered):
        raise Mismatch(f"you said {got}, but the stage uses {used} of {offered} palette colours.")
    return f"the posterised photo uses {used} of the {offered} aged pigment colours."


# ------------------------------------------------------------------------------------ 02 SVD


@exercise("02-a", "build SD-1.4's UNet on the meta device (sd_layout_modules(SDLayoutConfig.sd14()) "
          "inside accelerate.init_empty_weights()) and add min(out, in·kh·kw) = "
          "min(w.shape[0], w[0].numel()) over every nn.Linear and nn.Conv2d.")  # fmt: skip
def check_shift_count(answer: Any) -> str:
    """02-a: the number of spectral shifts of SD-1.4's UNet, from its weight shapes."""
    layers, shifts = sd14_shift_count()
    if int(answer) != shifts:
        raise Mismatch(f"you counted {int(answer):,}, but SD-1.4's UNet has {shifts:,} shifts.")
    return (
        f"{shifts:,} shifts in {layers} layers{_published('SD-1.4', shifts, SD14_SPECTRAL_SHIFTS)}"
        f" — {4 * shifts / 2**20:.2f} MiB in float32."
    )


@exercise("02-b", "W = U · diag(relu(σ + s·δ)) · Vᵀ; `U * v` scales U's columns like U @ diag(v). "
          "Singular values are never negative, so σ + s·δ is clamped at 0.")  # fmt: skip
def check_shifted_weight(answer: Any, layer: SpectralShiftLayer) -> str:
    """02-b: ``answer(U, S, Vh, delta, scale)`` must give the layer's shifted weight matrix.

    Tried with a δ that pushes about half of the σ + s·δ below zero (where the relu acts) and
    two scales; the truth is the layer's own ``rebuild_weight`` with that δ (restored after).
    """
    k = layer.S.numel()
    delta = -2.0 * layer.S * torch.rand(k, generator=torch.Generator().manual_seed(0)).to(layer.S)
    saved_delta, saved_scale = layer.delta.detach().clone(), layer.scale
    for scale in (1.0, 0.5):
        try:
            with torch.no_grad():
                layer.delta.copy_(delta)
                layer.scale = scale
                want = layer.rebuild_weight().reshape(layer.U.shape[0], -1).double()
        finally:
            with torch.no_grad():
                layer.delta.copy_(saved_delta)
            layer.scale = saved_scale
        with torch.no_grad():
            got = torch.as_tensor(answer(layer.U, layer.S, layer.Vh, delta, scale)).double()
        if tuple(got.shape) != tuple(want.shape):
            raise Mismatch(
                f"your W has shape {tuple(got.shape)}, the layer's is {tuple(want.shape)}."
            )
        error = relative_error(got, want)
        if error > 1e-4:
            no_relu = (layer.U.double() * (layer.S + scale * delta).double()) @ layer.Vh.double()
            if float((got - no_relu).norm() / want.norm()) < 1e-4:
                raise Mismatch(f"at s = {scale} your W keeps the negative σ + s·δ.")
            raise Mismatch(f"at s = {scale} your W is off by {error:.1%} (relative).")
    clipped = int((layer.S + delta < 0).sum())
    return f"matches the layer at s = 1 and 0.5; the relu clipped {clipped} of {k} singular values."


# ------------------------------------------------------------------------------------ 03 InST


@exercise("03-b", "in eval mode (no dropout) b = f(0) and column i of A is f(eᵢ) − f(0): "
          "feed torch.eye(d)[:, None] as a batch of one-token inputs.")  # fmt: skip
def check_affine_token(answer: Any, run: str | os.PathLike) -> str:
    """03-b: ``answer = (A, b)`` with ``f(x) = A x + b`` for the run's image→token module ``f``."""
    module = load_image_to_token(RunFolder(run).image_to_token).eval()
    a, b = (torch.as_tensor(t).double() for t in answer)
    d = module.config.image_dim
    x = torch.nn.functional.normalize(
        torch.randn(16, d, generator=torch.Generator().manual_seed(1)), dim=-1
    )
    with torch.no_grad():
        want = module(x[:, None].to(next(module.parameters()).dtype)).double()
    got = x.double() @ a.T + b
    error = relative_error(got, want)
    if error > 1e-4:
        raise Mismatch(
            f"A x + b differs from the module's token by {error:.1%} (relative) on 16 embeddings."
        )
    return (
        f"16 random embeddings: A x + b equals the module's token to {error:.0e} — one pooled "
        f"token makes the softmax 1, so {count_parameters(module):,} parameters act as one "
        f"{a.shape[0]}×{a.shape[1]} matrix and a bias."
    )


@exercise("03-a", "x_t = √ᾱ_t · x₀ + √(1 − ᾱ_t) · ε with ᾱ_t = scheduler.alphas_cumprod[t].")
def check_add_noise(answer: Any, scheduler: Any) -> str:
    """03-a: ``answer(x0, noise, t)`` must be the forward process q(x_t | x₀) of ``scheduler``."""
    g = torch.Generator().manual_seed(2)
    x0, noise = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    steps = scheduler.config.num_train_timesteps
    for t in (0, steps // 4, steps // 2, steps - 1):
        want = scheduler.add_noise(x0, noise, torch.tensor([t]))
        got = torch.as_tensor(answer(x0, noise, t))
        if tuple(got.shape) != tuple(want.shape):
            raise Mismatch(
                f"at t = {t} your x_t has shape {tuple(got.shape)}, not {tuple(want.shape)}."
            )
        error = relative_error(got.double(), want.double())
        if error > 1e-5:
            raise Mismatch(f"at t = {t} your x_t is off by {error:.1%} (relative).")
    last = float(scheduler.alphas_cumprod[steps - 1]) ** 0.5
    return f"matches scheduler.add_noise at 4 timesteps; at t = {steps - 1} only {last:.3f} of x₀ is left."


# -------------------------------------------------------------------------------- 04 joint


@exercise("04-b", "square shift_magnitudes(run)'s norms; the share is the sum over names containing "
          "'.attn2.' divided by the sum over all layers.")  # fmt: skip
def check_cross_attention_share(answer: Any, run: str | os.PathLike) -> str:
    """04-b: the share of the run's Σ‖δ‖² that sits in cross-attention (``attn2``) layers."""
    shifts, _ = read_spectral_shift_file(RunFolder(run).spectral_shifts)
    square = {n: float(d.double().pow(2).sum()) for n, d in shifts.items()}
    cross = [n for n in shifts if ".attn2." in f".{n}."]
    want = sum(square[n] for n in cross) / sum(square.values())
    require_close("your share", answer, want, rtol=1e-3, atol=1e-6)
    size = sum(shifts[n].numel() for n in cross) / sum(d.numel() for d in shifts.values())
    verdict = "more" if want > size else "less"
    return (
        f"cross-attention holds {want:.1%} of Σ‖δ‖² but only {size:.1%} of the shifts: it moved "
        f"{verdict} than its size says."
    )


@exercise("04-a", "count_parameters(ImageToToken(ImageToTokenConfig())) plus the shift count of "
          "exercise 02-a (sum of min(out, in·kh·kw) over SD-1.4's UNet layers).")  # fmt: skip
def check_svd_inst_parameters(answer: Any) -> str:
    """04-a: the trainable parameters of ``svd-inst`` at SD-1.4 size (module + shifts)."""
    module = count_parameters(ImageToToken(ImageToTokenConfig()))
    _, shifts = sd14_shift_count()
    want = module + shifts
    if int(answer) != want:
        raise Mismatch(f"you said {int(answer):,}, but the kit counts {want:,}.")
    note = _published("InST's module", module, INST_SD_PARAMETERS)
    return (
        f"{module:,} (InST's module{note}) + {shifts:,} (shifts) = {want:,}: "
        f"{shifts / want:.1%} of what svd-inst trains sits in the UNet."
    )


CHECKS: dict[str, Callable[..., Any]] = {
    c.exercise_id: c  # type: ignore[attr-defined]
    for c in (
        check_latent_side,
        check_palette_colours,
        check_shift_count,
        check_shifted_weight,
        check_affine_token,
        check_add_noise,
        check_cross_attention_share,
        check_svd_inst_parameters,
    )
}
