"""Profiles: one name that picks the base model and the settings sized for it.

``tiny`` runs everywhere (CPU, CI's ``make test``) on random weights — it shows the machinery,
never quality. ``pocket`` runs on a small model that the kit pretrained on the offline photos
(``svdinst pocket pretrain``): on a CPU, training moves its img2img outputs toward a style by a
measurable amount (on the committed weights a small one, mostly within the seed noise: the
report's Pocket model section), at toy scale, and it says nothing about SD-1.4. ``sd14`` is
the report's setting on a GPU (its memory settings fit a 16 GB Colab T4, its counts take days
there); ``course`` is SD-1.4 with counts sized so every notebook takes ≤ 30 min on a free
Colab T4 and the course ≤ 3 h (:mod:`svdinst.course.budget` holds the arithmetic). ``auto`` picks
``course`` on a CUDA card of ≤ 16 GB, ``sd14`` on a bigger one, otherwise ``pocket`` when its
weights are installed, else ``tiny``. ``sd14-random`` is ``sd14``'s
settings on a model of SD-1.4's exact shapes with random weights (no download): it rehearses the
time and memory of a full run (``benchmarks/rehearsal.py``) and, like ``tiny``, never makes
quality claims.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields, replace

from svdinst.device import card_memory_gib, default_device
from svdinst.models.layout_config import POCKET_VERSION
from svdinst.models.loading import POCKET, SD14_ID, SD14_RANDOM, TINY, pocket_model_path

RANDOM_NOTE = "random weights, never for quality claims"
T4_CLASS_GIB = 16.0  # cards up to this size (a Colab T4 reports 14.75 GiB) get the `course` counts
# Environment variables that replace a profile's folders without editing a notebook: a local copy
# of SD-1.4 (a Drive folder on Colab) or the rehearsal's hub-layout folders (benchmarks/).
MODEL_ENV = "SVDINST_MODEL"
IMAGE_ENCODER_ENV = "SVDINST_IMAGE_ENCODER"
OVERRIDES_ENV = "SVDINST_PROFILE_OVERRIDES"  # JSON of Profile fields (the rehearsal's counts)


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
    train_batch_size: int = 1  # SD-1.4 at 512 px: batch 1 is what a 16 GB T4 holds
    gradient_checkpointing: bool = True  # keeps SD-1.4 training inside a T4's 16 GB
    lr_shifts: float = 1e-3  # the report's AdamW lr for δ; random tiny weights need 1e-2
    lr_token: float | None = None  # image→token module; None → InST's 1e-4 (thousands of steps)
    baseline_batch_cap: int = 4  # GAN/arbitrary-style baselines: papers' batch, at most this
    training_seeds: tuple[int, ...] = (0,)  # notebook 05's TRAINING_SEEDS="auto"; ≥ 3 give ± std
    guidance: float | None = None  # stylizing CFG scale; None → 7.5 img2img, 10 inst (the papers')
    init: str = "img2img"  # stylizing's start from the photo: SDEdit, or "inst" (InST's inversion)
    image_encoder: str | None = None  # InST's vision tower; None → model's image_encoder/ or CLIP-L
    test_photos: int | None = None  # test photos stylized per method; None = all (report: 711)
    baseline_steps: int = 1000  # notebook 06's GPU_STEPS="auto" (the papers train 100k–200k)
    about: str = ""  # one line on what the model is; "" = random weights (without quality claims)

    @property
    def note(self) -> str:
        """What this profile's images can show, printed by notebooks and written into reports."""
        return self.about or ("" if self.quality_claims else RANDOM_NOTE)


_POCKET_V1 = Profile(
    name="pocket",
    model=POCKET,
    resolution=96,  # the pocket model's native size (SDLayoutConfig.pocket(): f = 4, 24²)
    train_steps=150,  # ~1 min per run on one CPU thread; 9 runs keep `make reproduce` ≤ 20 min
    stylize_seeds=2,  # N comes from crops of the test photos (svdinst.pocket.experiment)
    inference_steps=20,  # DDIM; 20 steps already give clean samples at 24² latents
    strength=0.5,  # highest strength whose outputs stay clearly closest to their own photo
    mixed_precision="no",
    quality_claims=False,  # a toy model: says nothing about SD-1.4's quality
    train_batch_size=4,  # a CPU step stays well under a second at 96 px
    gradient_checkpointing=False,  # nothing to save at 96 px
    lr_shifts=2e-2,  # 150 steps: 1e-3 (SD's) barely moves δ; 2e-2 to 1e-1 measured alike
    baseline_batch_cap=16,  # small networks at 128 px
    training_seeds=(0, 1, 2),  # the pocket experiment reports mean ± std over 3 seeds
    guidance=3.0,  # its text tower is random: 7.5 over-amplifies a caption code into smears
    about="a small model pretrained by the kit on offline photos — real images at toy scale, "
    "so style learning can be measured; no claims about SD-1.4",
)

# pocket-v2 (128 px, f = 4, a style space): 15 runs (3 modes × 5 seeds) must fit `make reproduce`'s
# 20 min on a 2-core CPU, so a run is ~60 steps at batch 2 (≈ 0.5 s/step at 128 px on one thread,
# measured with v2-sized weights; benchmarks/pocket_reproduce_cost.py compares v1 and v2).
# lr_shifts, strength and guidance are chosen on the training style images only (`pocket select`,
# reports/pocket/selection.md), never on the test photos.
_POCKET_V2 = replace(
    _POCKET_V1,
    resolution=128,  # SDLayoutConfig.pocket_v2(): f = 4, 32² latents
    train_steps=60,  # ≈ 30 s per run on one CPU thread, + ~40 s loading and SVD per run
    train_batch_size=2,  # a 128 px step costs ~1.8× a 96 px one; batch 2 keeps 60 steps ≈ 25 s
    # svdinst pocket select (reports/pocket/selection.md), on a held-out TRAINING proxy: of
    # lr_token 1e-4 / 3e-3 × lr_shifts 0.02 / 0.05 × strength 0.4 / 0.5 / 0.6, this triple moved
    # the outputs' FID to the style images most (−4.5 % vs the base model; SSIM to the held-out
    # proxy fell, as with every candidate). InST's 1e-4 barely moves the token in 60 steps.
    lr_token=3e-3,
    lr_shifts=5e-2,
    strength=0.6,
    training_seeds=(0, 1, 2, 3, 4),  # ≥ 5 seeds: the targets are judged against their spread
    about="a small model pretrained by the kit on offline photos and seven procedural styles — "
    "real images at toy scale with a style space, so style learning can be measured; no claims "
    "about SD-1.4",
)
# pocket-v3: pocket-v2's networks with its UNet trained further (same sizes, same CPU cost).
_POCKET_V3 = replace(
    _POCKET_V2,
    # svdinst pocket select on pocket-v3 (reports/pocket/selection.md), on the held-out TRAINING
    # proxy: of 48 candidates (2 token lrs × 2 shift lrs × guidance 3 / 7.5 × img2img / InST's
    # inversion × 3 strengths), InST's token lr with lr_shifts 0.05 at guidance 3, started by
    # InST's stochastic inversion at strength 0.6, moved the outputs' FID to the style images
    # most (+11.3 % vs the base model started the same way; the best at guidance 7.5: +9.1 %;
    # the best img2img candidate: +7.5 %, at guidance 7.5; SSIM to the proxy fell 0.055).
    lr_token=None,
    lr_shifts=5e-2,
    strength=0.6,
    init="inst",
    guidance=3.0,  # v1's, kept: the selection above scored it against 7.5
    about="a small model pretrained by the kit on offline photos and seven procedural styles "
    "(pocket-v2's UNet trained further) — real images at toy scale with a style space, so style "
    "learning can be measured; no claims about SD-1.4",
)
# pocket-v4: pocket-v3's UNet trained further on ten styles (same sizes, same CPU cost).
_POCKET_V4 = replace(
    _POCKET_V3,
    # Weights not shipped (the experiment came out worse than v3's; reports/benchmarks.md).
    # svdinst pocket select on pocket-v4 (table in reports/benchmarks.md), the same 24 candidates on
    # the same held-out TRAINING proxy: v3's learning rates (InST's token lr, lr_shifts 0.05, kept
    # from _POCKET_V3) with img2img at strength 0.5 gained most, +1.7 % FID (v3's choice,
    # inversion at 0.6, now −2.8 %: v4's base model already sits closer to the proxy set); every
    # inversion-started candidate raised SSIM to the proxy.
    strength=0.5,
    init="img2img",
    about="a small model pretrained by the kit on offline photos and ten procedural styles "
    "(pocket-v3's UNet trained further; three styles use the mural proxy's techniques in other "
    "palettes) — real images at toy scale with a style space, so style learning can be "
    "measured; no claims about SD-1.4",
)
# pocket-v5: a 1.6× wider UNet trained from scratch on pocket-v2's VAE (~1.3× v3's CPU cost).
_POCKET_V5 = replace(
    _POCKET_V3,
    # Weights not trained yet (no GPU time since the recipe was written): v3's settings until
    # `svdinst pocket select --profile pocket-v5` chooses them on its weights.
    about="a small model pretrained by the kit on offline photos and seven procedural styles "
    "(a wider UNet than pocket-v3's, on pocket-v2's VAE) — real images at toy scale with a style "
    "space, so style learning can be measured; no claims about SD-1.4",
)
POCKET_PROFILES = {
    "pocket-v1": _POCKET_V1,
    "pocket-v2": _POCKET_V2,
    "pocket-v3": _POCKET_V3,
    "pocket-v4": _POCKET_V4,
    "pocket-v5": _POCKET_V5,
}

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
        train_batch_size=4,  # toy tensors: a batch of 4 smooths the loss curve for free
        gradient_checkpointing=False,  # nothing to save at 64 px
        lr_shifts=1e-2,  # random weights: a few dozen steps show a falling curve
        baseline_batch_cap=64,  # tiny networks: no memory limit worth the name
    ),
    "pocket": POCKET_PROFILES[POCKET_VERSION],  # the committed pocket model's settings
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
# SD-1.4 with counts a free Colab T4 runs in ≤ 30 min per notebook, ≤ 3 h in all; the estimate is
# svdinst.course.budget.course_estimate (tests/course/test_profiles.py recomputes it).
PROFILES["course"] = replace(
    PROFILES["sd14"],
    name="course",
    train_steps=400,  # 04 trains inst, svdiff and svd-inst in one sitting: 3 × 400 steps ≈ 28 min
    stylize_seeds=3,  # 05: 3 methods × 20 photos × 3 seeds = 180 images ≈ 29 min
    test_photos=20,  # enough photos for KID and LPIPS to mean something; the default set has 3
    baseline_steps=90,  # 06: six methods × 90 steps ≈ 28 min on a T4 (a demo: the papers train 100k+)
    training_seeds=(0,),  # one run per mode: seeds 1, 2 would triple 04's time
)
# SD-1.4's exact shapes and sd14's settings on random weights: same time and memory, no quality.
PROFILES["sd14-random"] = replace(PROFILES["sd14"], name="sd14-random", model=SD14_RANDOM,
                                  quality_claims=False)  # fmt: skip


def auto_profile_name() -> tuple[str, str]:
    """What ``PROFILE="auto"`` picks here, and why (one line for the notebook's output).

    Returns:
        `tuple[str, str]`: the profile name and the reason.
    """
    if default_device() == "cuda":
        gib = card_memory_gib("cuda:0")
        if gib is None:
            return "sd14", "CUDA is available (its memory could not be read)"
        if gib <= T4_CLASS_GIB:
            return "course", (
                f"a CUDA card of {gib:.1f} GiB (≤ {T4_CLASS_GIB:.0f}): counts sized for ≤ 30 min "
                "per notebook on a Colab T4; PROFILE='sd14' gives the report's full settings"
            )
        return "sd14", f"a CUDA card of {gib:.1f} GiB: the report's full settings"
    if (pocket_model_path() / "model_index.json").is_file():
        return "pocket", "no CUDA GPU; the pocket model runs on a CPU"
    return "tiny", "no CUDA GPU, and the pocket weights are not installed"


def env_overrides() -> dict[str, object]:
    """Overrides from the environment: ``SVDINST_MODEL`` / ``SVDINST_IMAGE_ENCODER`` (folders)
    and ``SVDINST_PROFILE_OVERRIDES`` (a JSON object of :class:`Profile` fields, e.g.
    ``{"train_steps": 60}``: what ``benchmarks/rehearsal.py`` runs unedited notebooks with)."""
    pairs = (("model", MODEL_ENV), ("image_encoder", IMAGE_ENCODER_ENV))
    found: dict[str, object] = {f: os.environ[var] for f, var in pairs if os.environ.get(var)}
    extra = json.loads(os.environ.get(OVERRIDES_ENV) or "{}")
    unknown = sorted(set(extra) - {f.name for f in fields(Profile)})
    if unknown:
        raise ValueError(
            f"{OVERRIDES_ENV} names unknown Profile fields {unknown}; unset it or fix it."
        )
    if "training_seeds" in extra:
        extra["training_seeds"] = tuple(extra["training_seeds"])
    return {**found, **extra}


def get_profile(name: str = "auto", *, verbose: bool = True, **overrides: object) -> Profile:
    """Return the named profile; ``"auto"`` picks ``course`` on a CUDA card of ≤ 16 GB, ``sd14``
    on a bigger one, else ``pocket`` (``tiny`` when the pocket weights are not installed).

    ``SVDINST_MODEL`` and ``SVDINST_IMAGE_ENCODER``, when set, replace the profile's ``model``
    and ``image_encoder`` (a local copy of SD-1.4 or CLIP-L; explicit ``overrides`` win).

    Args:
        name (`str`, defaults to ``"auto"``): ``"auto"``, or a key of :data:`PROFILES`.
        verbose (`bool`, defaults to `True`): print which profile was chosen and why.
        overrides: fields to replace, e.g. ``model="/content/sd14"``.
    """
    chosen = name
    if name == "auto":
        chosen, why = auto_profile_name()
        if verbose:
            print(f"PROFILE='auto' → '{chosen}' ({why}).")
    if chosen not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}; choose 'auto' or one of {sorted(PROFILES)}.")
    from_env = env_overrides()
    if verbose and from_env:
        print(f"Profile '{chosen}': {from_env} from the environment.")
    overrides = {**from_env, **overrides}
    profile = replace(PROFILES[chosen], **overrides) if overrides else PROFILES[chosen]
    if verbose and not profile.quality_claims:
        print(f"Profile '{profile.name}': {profile.note}.")
        if profile.resolution >= 512:
            print(
                "  (full SD-1.4 size: its time and memory are what the real model costs; "
                "for rehearsals, never for quality claims)"
            )
    return profile
