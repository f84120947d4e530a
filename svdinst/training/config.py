"""The training configuration: one dataclass, the settings file of a run folder.

Every field carries a trailing comment saying why its default is what it is. The settings file
(:attr:`svdinst.formats.run_folder.RunFolder.CONFIG`) stores all of them plus
``svdinst_version``; the contract keys other stages read are :data:`CONTRACT_KEYS`.
:func:`check_run_start` refuses a start that cannot work; :func:`prepare_run_dir` then creates
the folder of a fresh, resumed or overwritten run.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import svdinst
from svdinst.device import PRECISIONS
from svdinst.errors import RunFolderError, SvdinstError
from svdinst.formats.run_folder import RunFolder

MODES = ("inst", "svdiff", "svd-inst")
PROMPT_TEMPLATES = {
    "bare": "{}",  # InST: the prompt is the placeholder alone ("*")
    "style": "a painting in the style of {}",  # textual-inversion style prompt
}
AUGMENTATIONS = ("crop-flip", "flip", "none")
TOKEN_IMAGES = ("crop", "whole")  # what CLIP sees when InST computes the token (docs/DEVIATIONS.md)
INST_LR = 1e-4  # InST's v1-finetune.yaml: base_learning_rate 1e-4 × (1 GPU · batch 1 · accum 1)
SVDIFF_LR = 1e-3  # svdiff-pytorch's train_svdiff.py --learning_rate (the paper: 1000× fine-tuning)
# Settings that may change between a run and its --resume (everything else must match).
# step_mode, channels_last: the same math and state (only kernels and memory layout differ).
RESUMABLE_FIELDS = (
    "steps", "checkpoint_every", "keep_checkpoints", "progress", "out", "step_mode", "channels_last"
)  # fmt: skip
STEP_MODES = ("auto", "graph", "eager")  # see svdinst.training.graphed
# What other stages read from a run's settings (stylize, LoRA export, the report).
CONTRACT_KEYS = ("model", "mode", "placeholder_token", "prompt_template")
CHECKPOINT_CAP = 100  # the default interval is 10 % of the steps, but never more than this


def finite(*values: float | None) -> bool:
    """Every value is ``None`` or a finite number (NaN and ±inf settings train to NaN weights)."""
    return all(v is None or math.isfinite(v) for v in values)


class TrainConfigError(SvdinstError, ValueError):
    """A training setting is out of range (the CLI prints it as one line)."""


@dataclass
class TrainConfig:
    """Settings of one training run (``svdinst train`` flags map one to one)."""

    model: str  # "tiny", a hub id or a pipeline folder: the base model (contract key)
    style: list[str]  # style image files and/or folders of them
    out: str  # the run folder (docs/DESIGN.md, "Run folder")
    mode: str = "svd-inst"  # inst = InST module only; svdiff = shifts only; svd-inst = both
    steps: int = 1000  # InST's config stops at 6,100 (lr 1e-4), svdiff-pytorch's README at 500
    lr: float | None = None  # sets both parts' lr; None → each part's published lr (below)
    lr_token: float | None = None  # image→token module; None → lr, else InST's 1e-4 (batch 1)
    lr_shifts: float | None = None  # spectral shifts δ; None → lr, else SVDiff's 1e-3
    weight_decay: float = 1e-2  # AdamW default of diffusers' textual-inversion script
    warmup_steps: int = 10  # linear ramp; absolute, so a resumed longer run keeps its schedule
    batch_size: int = 1  # global batch (split over GPUs); 1 fits SD-1.4 on a 16 GB T4
    grad_accum: int = 1  # micro-batches per optimizer step; raises the batch without memory
    # Training crop size (px); None → the model's native size (UNet sample_size × the VAE's
    # factor: SD-1.4 512, tiny 64, pocket 96), what the model was trained at.
    resolution: int | None = None
    augment: str = "crop-flip"  # random crops + horizontal flips of the style image(s)
    min_crop: float = 0.5  # smallest crop side as a fraction of the image's shorter side
    crop_pool: int = 32  # crops drawn once per image and VAE-encoded once; 0 = fresh each step
    seed: int = 0  # one seed drives data order, crops, noise and timesteps: runs repeat exactly
    placeholder_token: str = "<mural>"  # the new token (contract key)
    initializer_token: str = "painting"  # start row of the token (svdiff keeps it fixed)
    prompt_template: str = "{}"  # "{}" = InST's bare placeholder (contract key)
    image_encoder: str | None = None  # CLIP vision tower; None → model's image_encoder/ or CLIP-L
    image_tokens: str = "pooled"  # InST attends over the pooled embedding; "patches" variant
    token_image: str = "crop"  # InST: CLIP sees each training sample; "whole": the style image
    saved_token: str = "mean"  # several style images: their tokens' mean, or one file's token
    mixed_precision: str = "auto"  # frozen parts' dtype; auto → svdinst.device (fp16 on CUDA)
    gradient_checkpointing: bool | None = None  # None → on with CUDA cards < 24 GiB (a T4)
    # Steps between checkpoints for --resume; 0 = only the last one. None → every 10 % of the
    # steps, at most every 100 (CHECKPOINT_CAP): a Colab disconnect or Ctrl-C then costs at most
    # that much work (minutes on a T4), and keep_checkpoints bounds the disk it takes.
    checkpoint_every: int | None = None
    keep_checkpoints: int = 2  # older checkpoints are deleted to bound disk use
    progress: bool = True  # tqdm bar with the loss
    shift_include: list[str] | None = None  # layer-name filters for add_spectral_shifts
    shift_exclude: list[str] | None = None  # None → every Linear/Conv2d (svdiff-pytorch: +norms)
    fast_shifts: bool | None = None  # spectral fast path; None → on with CUDA (exact on CPU)
    # How a step runs (svdinst.training.graphed): "graph" = forward+backward over static buffers
    # captured in one CUDA graph (the same step without capture on a CPU); "eager" = plain
    # autograd; "auto" = graph on CUDA unless grad_accum > 1 or gradient checkpointing (whose
    # RNG handling cannot be captured), else eager: the launch-bound batch-1 step is ~2× faster.
    step_mode: str = "auto"
    # The UNet's convolutions in NHWC (torch.channels_last): cuDNN's fp16/bf16 convolutions run
    # NHWC, and NCHW activations cost a transpose per conv (6.2 ms of an 18.8 ms SD-1.4 step on an
    # H100). None → on with the CUDA-graph step (cards ≥ 24 GiB: 0.85× inst, 0.93× svd-inst, H100),
    # off elsewhere: svd-inst keeps an NHWC copy of each factored conv's Vᵀ (+1.2 GiB on SD-1.4).
    channels_last: bool | None = None
    extra: dict = field(default_factory=dict)  # free-form notes stored with the run

    def __post_init__(self) -> None:
        self.style = [str(s) for s in ([self.style] if isinstance(self.style, str) else self.style)]
        self.out = str(self.out)
        self.model = str(self.model)
        self.prompt_template = PROMPT_TEMPLATES.get(self.prompt_template, self.prompt_template)
        checks = [
            (self.mode in MODES, f"mode must be one of {list(MODES)}, got {self.mode!r}"),
            (self.steps >= 1, f"steps must be ≥ 1, got {self.steps}"),
            (
                all(v is None or v > 0 for v in (self.lr, self.lr_token, self.lr_shifts))
                and finite(self.lr, self.lr_token, self.lr_shifts),
                f"lr, lr_token, lr_shifts must be finite numbers > 0, got {self.lr}, "
                f"{self.lr_token}, {self.lr_shifts}",
            ),
            (
                finite(self.weight_decay) and self.weight_decay >= 0,
                f"weight_decay must be a finite number ≥ 0, got {self.weight_decay}",
            ),
            (self.batch_size >= 1 and self.grad_accum >= 1, "batch size and grad_accum ≥ 1"),
            (
                self.resolution is None or (self.resolution % 8 == 0 and self.resolution >= 8),
                f"resolution must be a positive multiple of 8 (e.g. 512), got {self.resolution}",
            ),
            (self.step_mode in STEP_MODES, f"step_mode must be one of {list(STEP_MODES)}"),
            (self.augment in AUGMENTATIONS, f"augment must be one of {list(AUGMENTATIONS)}"),
            (self.image_tokens in ("pooled", "patches"), "image_tokens: 'pooled' or 'patches'"),
            (self.token_image in TOKEN_IMAGES, f"token_image must be one of {list(TOKEN_IMAGES)}"),
            (self.crop_pool >= 0 and self.keep_checkpoints >= 1, "crop_pool ≥ 0, keep ≥ 1"),
            (
                finite(self.min_crop) and 0.05 <= self.min_crop <= 1.0,
                f"min_crop must be in [0.05, 1], got {self.min_crop}",
            ),
            (
                self.mixed_precision in ("auto", *PRECISIONS),
                f"mixed precision must be 'auto' or one of {list(PRECISIONS)}",
            ),
            (self.prompt_template.count("{}") == 1, "prompt_template needs exactly one '{}'"),
            (
                self.warmup_steps >= 0 and (self.checkpoint_every or 0) >= 0,
                "warmup_steps and checkpoint_every must be ≥ 0",
            ),
            (bool(self.style), "give at least one style image"),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainConfigError(f"Training setting: {message}.")

    @property
    def checkpoint_interval(self) -> int:
        """Steps between checkpoints: ``checkpoint_every``, else 10 % of the steps (≤ 100)."""
        if self.checkpoint_every is not None:
            return self.checkpoint_every
        return max(1, min(CHECKPOINT_CAP, self.steps // 10))

    @property
    def token_lr(self) -> float:
        """The image→token module's lr: ``lr_token``, else ``lr``, else InST's 1e-4."""
        return next(v for v in (self.lr_token, self.lr, INST_LR) if v is not None)

    @property
    def shifts_lr(self) -> float:
        """The spectral shifts' lr: ``lr_shifts``, else ``lr``, else SVDiff's 1e-3."""
        return next(v for v in (self.lr_shifts, self.lr, SVDIFF_LR) if v is not None)

    @property
    def trains_token(self) -> bool:
        """The image→token module is trained (InST's part)."""
        return self.mode in ("inst", "svd-inst")

    @property
    def trains_shifts(self) -> bool:
        """The UNet's spectral shifts δ are trained (SVDiff's part)."""
        return self.mode in ("svdiff", "svd-inst")

    def to_json(self) -> dict:
        return {**asdict(self), "svdinst_version": svdinst.__version__}

    def save(self, run_dir: str | os.PathLike) -> Path:
        """Write the run's settings file atomically."""
        return RunFolder(run_dir).write_config(self.to_json(), sort_keys=True)

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> TrainConfig:
        """Read a run's settings back (unknown keys such as ``svdinst_version`` are dropped)."""
        data = read_config_json(run_dir)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def read_config_json(run_dir: str | os.PathLike) -> dict:
    """A run's settings as a dict, or a :class:`RunFolderError` that says what to do."""
    return RunFolder(run_dir).read_config(required=CONTRACT_KEYS)


def _comparable(name: str, value: Any) -> Any:
    """Style paths compare as normalised paths: ``data/style/`` and ``./data/style`` are one."""
    if name == "style" and isinstance(value, list):
        return [os.path.normpath(v) for v in value]
    return value


def _check_resume(config: TrainConfig, folder: RunFolder) -> None:
    saved = read_config_json(folder.path)
    now = config.to_json()
    diffs = [
        f"{f.name}: {saved.get(f.name)!r} → {getattr(config, f.name)!r}"
        for f in fields(TrainConfig)
        if f.name not in RESUMABLE_FIELDS
        and _comparable(f.name, saved.get(f.name)) != _comparable(f.name, now[f.name])
    ]
    if diffs:
        raise RunFolderError(
            f"--resume: settings differ from '{folder.config_path}' ({'; '.join(diffs)}); "
            "resume with the original settings (only --steps may change) or use a new --out."
        )


def check_run_start(config: TrainConfig, resume: bool, overwrite: bool) -> RunFolder:
    """Refuse a start that cannot work (a run in the way, nothing to resume, changed settings)
    before any model is loaded or any file deleted."""
    folder = RunFolder(config.out)
    folder.check_start(resume=resume, overwrite=overwrite)
    if resume:
        if config.resolution is None:  # the default: the native size the run resolved to
            config.resolution = read_config_json(folder.path).get("resolution")
        _check_resume(config, folder)
    return folder


def prepare_run_dir(config: TrainConfig, resume: bool, overwrite: bool) -> Path:
    """Create the run folder; refuse to clobber a run, or check a resumed run's settings.

    With ``overwrite`` the old run's files are deleted here: call it once the new run's model and
    style images loaded, so a mistyped setting leaves the old run intact.
    """
    check_run_start(config, resume, overwrite)
    return RunFolder(config.out).prepare(resume=resume, overwrite=overwrite)
