"""Profiles: one name that picks the base model and the settings sized for it.

``tiny`` runs everywhere (CPU, CI, ``make reproduce``) on random weights — it shows the machinery,
never quality. ``sd14`` is the report's setting on a GPU; its defaults fit a 16 GB Colab T4.
``auto`` picks ``sd14`` when CUDA is present, otherwise ``tiny``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from svdinst.models import SD14_ID, TINY


@dataclass(frozen=True)
class Profile:
    """Settings that change with the base model; notebooks read them instead of hard-coding."""

    name: str
    model: str  # what load_components() receives: "tiny", a hub id or a folder
    resolution: int  # training crops and stylized images (px); SD-1.4 was trained at 512
    train_steps: int  # per training run; tiny only needs enough to show the loss falling
    stylize_seeds: int  # seeds per content photo; the report used 10
    inference_steps: int  # DDIM steps when stylizing; 50 as in the report
    strength: float  # img2img strength; the report used 0.8
    mixed_precision: str  # "no" on CPU; "fp16" keeps SD-1.4 training inside a T4's 16 GB
    quality_claims: bool  # False: figures made with this profile say nothing about quality


PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        name="tiny",
        model=TINY,
        resolution=64,
        train_steps=60,
        stylize_seeds=3,
        inference_steps=10,
        strength=0.8,
        mixed_precision="no",
        quality_claims=False,
    ),
    "sd14": Profile(
        name="sd14",
        model=SD14_ID,
        resolution=512,
        train_steps=1000,
        stylize_seeds=10,
        inference_steps=50,
        strength=0.8,
        mixed_precision="fp16",
        quality_claims=True,
    ),
}


def get_profile(name: str = "auto", *, verbose: bool = True, **overrides: object) -> Profile:
    """Return the named profile; ``"auto"`` picks ``sd14`` with CUDA, else ``tiny``.

    Args:
        name (`str`, defaults to ``"auto"``): ``"auto"``, or a key of :data:`PROFILES`.
        verbose (`bool`, defaults to `True`): print which profile was chosen and why.
        overrides: fields to replace, e.g. ``model="/content/sd14"``.
    """
    chosen = name
    if name == "auto":
        chosen = "sd14" if torch.cuda.is_available() else "tiny"
        if verbose:
            why = "CUDA is available" if chosen == "sd14" else "no CUDA GPU was found"
            print(f"PROFILE='auto' → '{chosen}' ({why}).")
    if chosen not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}; choose 'auto' or one of {sorted(PROFILES)}.")
    profile = replace(PROFILES[chosen], **overrides) if overrides else PROFILES[chosen]
    if verbose and not profile.quality_claims:
        print(
            f"Profile '{profile.name}' uses random-weight models: every stage runs, "
            "but its images and numbers say nothing about quality."
        )
    return profile
