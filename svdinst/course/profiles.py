"""Profiles: one name that picks the base model and the settings sized for it.

``tiny`` runs everywhere (CPU, CI's ``make test``) on random weights — it shows the machinery,
never quality. ``pocket`` runs on a small model that the kit pretrained on the offline photos
(``svdinst pocket pretrain``): on a CPU it learns a style visibly, at toy scale, and says nothing
about SD-1.4. ``sd14`` is the report's setting on a GPU; its defaults fit a 16 GB Colab T4.
``auto`` picks ``sd14`` when CUDA is present, otherwise ``pocket`` when its weights are
installed, else ``tiny``. ``sd14-random`` is ``sd14``'s
settings on a model of SD-1.4's exact shapes with random weights (no download): it rehearses the
time and memory of a full run (``benchmarks/rehearsal.py``) and, like ``tiny``, never makes
quality claims.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from svdinst.device import default_device
from svdinst.models.loading import POCKET, SD14_ID, SD14_RANDOM, TINY, pocket_model_path

RANDOM_NOTE = "random weights, never for quality claims"


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
    baseline_batch_cap: int = 4  # GAN/arbitrary-style baselines: papers' batch, at most this
    training_seeds: tuple[int, ...] = (0,)  # notebook 05's TRAINING_SEEDS="auto"; ≥ 3 give ± std
    guidance: float | None = None  # stylizing CFG scale; None → 7.5 img2img, 10 inst (the papers')
    about: str = ""  # one line on what the model is; "" = random weights (without quality claims)

    @property
    def note(self) -> str:
        """What this profile's images can show, printed by notebooks and written into reports."""
        return self.about or ("" if self.quality_claims else RANDOM_NOTE)


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
    "pocket": Profile(
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
# SD-1.4's exact shapes and sd14's settings on random weights: same time and memory, no quality.
PROFILES["sd14-random"] = replace(PROFILES["sd14"], name="sd14-random", model=SD14_RANDOM,
                                  quality_claims=False)  # fmt: skip


def get_profile(name: str = "auto", *, verbose: bool = True, **overrides: object) -> Profile:
    """Return the named profile; ``"auto"`` picks ``sd14`` with CUDA, else ``pocket`` (``tiny``
    when the pocket weights are not installed).

    Args:
        name (`str`, defaults to ``"auto"``): ``"auto"``, or a key of :data:`PROFILES`.
        verbose (`bool`, defaults to `True`): print which profile was chosen and why.
        overrides: fields to replace, e.g. ``model="/content/sd14"``.
    """
    chosen = name
    if name == "auto":
        pocket = (pocket_model_path() / "model_index.json").is_file()
        chosen = "sd14" if default_device() == "cuda" else ("pocket" if pocket else "tiny")
        if verbose:
            why = {
                "sd14": "CUDA is available",
                "pocket": "no CUDA GPU; the pocket model runs on a CPU",
                "tiny": "no CUDA GPU, and the pocket weights are not installed",
            }[chosen]
            print(f"PROFILE='auto' → '{chosen}' ({why}).")
    if chosen not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}; choose 'auto' or one of {sorted(PROFILES)}.")
    profile = replace(PROFILES[chosen], **overrides) if overrides else PROFILES[chosen]
    if verbose and not profile.quality_claims:
        print(f"Profile '{profile.name}': {profile.note}.")
        if profile.resolution >= 512:
            print(
                "  (full SD-1.4 size: its time and memory are what the real model costs; "
                "for rehearsals, never for quality claims)"
            )
    return profile
