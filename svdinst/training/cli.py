"""``svdinst train``: the command-line face of :func:`svdinst.training.loop.train` (docs/DESIGN.md, "CLI").

Every flag maps onto a :class:`~svdinst.training.config.TrainConfig` field of the same name, so the
config dataclass stays the one place that documents and validates training settings.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from svdinst.training.config import INST_LR, MODES, SVDIFF_LR, TrainConfig


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """``svdinst train`` (docs/DESIGN.md, "CLI")."""
    p = subparsers.add_parser("train", help="train a run: modes inst, svdiff, svd-inst")
    p.add_argument("--model", required=True, help="tiny, a hub id or a pipeline folder")
    p.add_argument("--style", required=True, nargs="+", help="style image files or folders")
    p.add_argument("--mode", required=True, help=f"one of {', '.join(MODES)}")
    p.add_argument("--steps", required=True, type=int, help="optimizer steps (total, on resume)")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="AdamW lr of every trained part (default: each part's own, below)",
    )
    p.add_argument(
        "--lr-token",
        type=float,
        default=None,
        help=f"lr of the image→token module (default: --lr, else InST's {INST_LR:g})",
    )
    p.add_argument("--lr-shifts", type=float, default=None,
                   help=f"lr of the spectral shifts (default: --lr, else SVDiff's {SVDIFF_LR:g})")  # fmt: skip
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--resolution", type=int, default=None,
                   help="training crop size (px; default: the model's native size, 512 for SD-1.4)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=1, help="global batch (split over GPUs)")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--augment", default="crop-flip", help="crop-flip, flip or none")
    p.add_argument("--crop-pool", type=int, default=32, help="cached crops per image; 0 = fresh")
    p.add_argument("--placeholder-token", default="<mural>")
    p.add_argument("--initializer-token", default="painting")
    p.add_argument("--prompt-template", default="{}", help="'{}', 'bare', 'style' or a template")
    p.add_argument("--image-encoder", default=None, help="CLIP vision tower (hub id or folder)")
    p.add_argument("--image-tokens", default="pooled", help="pooled (InST) or patches")
    p.add_argument(
        "--token-image",
        default="crop",
        help="what CLIP sees for the token: crop (InST: the training sample) or whole",
    )
    p.add_argument(
        "--saved-token",
        default="mean",
        help="the run's token: the mean over the style images, or one image's file name",
    )
    p.add_argument(
        "--mixed-precision",
        default="auto",
        help="auto (fp16 on CUDA, fp32 on CPU), no, fp16 or bf16 (GPUs that have it)",
    )
    p.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction,
                   default=None, help="recompute activations to save memory (default: on CUDA cards < 24 GiB)")  # fmt: skip
    p.add_argument("--step-mode", choices=("auto", "graph", "eager"), default="auto",
                   help="graph: one CUDA graph per step (auto: on CUDA when no --grad-accum and "
                        "no gradient checkpointing); eager: plain PyTorch")  # fmt: skip
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="UNet convolutions in NHWC, cuDNN's half-precision layout (default: on "
                        "with the CUDA-graph step)")  # fmt: skip
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="steps between checkpoints (default: 10%% of --steps, at most 100)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cli_train)


def _cli_train(args: argparse.Namespace) -> None:
    from svdinst.training.interrupt import TrainingInterrupted
    from svdinst.training.loop import train  # torch and diffusers load only when a run starts

    keys = {f.name for f in fields(TrainConfig)} & set(vars(args))
    config = TrainConfig(**{k: getattr(args, k) for k in keys}, progress=not args.no_progress)
    try:
        result = train(config, resume=args.resume, overwrite=args.overwrite)
    except TrainingInterrupted as stop:  # 130 / 143, the shell's code for the signal
        print(f"svdinst: {stop}", file=sys.stderr)
        raise SystemExit(stop.exit_code) from None
    if result.losses:
        print(f"Trained {config.mode} to step {result.steps} (last loss {result.losses[-1]:.4f}); "
              f"run folder: {result.run_dir}")  # fmt: skip
