"""``svdinst stylize``: the command-line face of :func:`svdinst.stylize.folder.stylize_folder`.

Building the parser imports no torch (``svdinst --help`` stays quick); the stylizer is imported
when the command runs. Under ``accelerate launch --num_processes N -m svdinst.cli stylize …``
every process uses its own GPU (``LOCAL_RANK``) and takes every N-th batch of (photo, seed)
pairs (see :mod:`svdinst.stylize.folder`).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from svdinst.errors import SvdinstError
from svdinst.formats.folders import check_writable
from svdinst.formats.outputs import LAYOUT, OutputsFolder
from svdinst.parallel import use_process_device
from svdinst.stylize.config import AUTO, INIT_MODES, StylizeConfig


def _check_finite(args: argparse.Namespace) -> None:
    """``float("nan")`` parses: refuse non-finite numbers here, with the flag's name."""
    for flag in ("strength", "guidance", "shift_scale"):
        value = getattr(args, flag)
        if value is not None and not math.isfinite(value):
            name = "--" + flag.replace("_", "-")
            raise SvdinstError(f"{name} must be a finite number, got {value}.")


def _batch_size(text: str) -> int | str:
    """``--batch-size``: ``auto`` or a positive integer."""
    if text == AUTO:
        return AUTO
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not '{AUTO}' or an integer") from None


def _stylize_cmd(args: argparse.Namespace) -> None:
    # Settings and --out are checked before the model loads: a typo costs no waiting.
    _check_finite(args)
    cfg = StylizeConfig(
        strength=args.strength,
        seeds=args.seeds,
        steps=args.steps,
        guidance=args.guidance,
        init=args.init,
        adain_style=str(args.adain) if args.adain else None,
        resolution=args.resolution,
        batch_size=args.batch_size,
        prompt=args.prompt,
    )
    check_writable(args.out, what="the stylized images")
    # torch and diffusers load here, when the command runs, not when the parser is built.
    from svdinst.device import default_device, inference_dtype
    from svdinst.stylize.speed import SpeedOptions
    from svdinst.stylize.stylizer import Stylizer, stylize_folder

    device = use_process_device("cpu" if args.device == "cpu" else default_device())
    speed = SpeedOptions(
        channels_last=args.channels_last, fuse_qkv=args.fuse_qkv, compile=args.compile
    )
    stylizer = Stylizer(
        args.model,
        args.run,
        lora=args.lora,
        shift_scale=args.shift_scale,
        device=device,
        dtype=inference_dtype(device),
        speed=speed,
    )
    written = stylize_folder(stylizer, args.content, args.out, cfg, resume=not args.restart)
    n = sum(len(v) for v in written.values())
    beside = OutputsFolder.SETTINGS
    print(f"Wrote {n} images for {len(written)} photo(s) to {args.out} ({beside} beside them)")


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``svdinst stylize`` (docs/DESIGN.md, "CLI")."""
    p = subparsers.add_parser("stylize", help="stylize photos with a trained run, N seeds each")
    p.add_argument("--model", help="tiny, a hub id or a folder (default: the run's model)")
    p.add_argument("--run", type=Path, help="training run folder")
    p.add_argument("--content", required=True, type=Path, help="a photo or a folder of photos")
    p.add_argument("--out", required=True, type=Path, help=f"output folder ({LAYOUT})")
    p.add_argument("--strength", type=float, default=0.8, help="how far to noise the photo")
    p.add_argument("--seeds", type=int, default=10, help="outputs per photo (seeds 0…N−1)")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps")
    p.add_argument("--guidance", type=float, help="CFG scale (default 7.5 img2img, 10 inst)")
    p.add_argument("--shift-scale", type=float, default=1.0, help="style strength s on δ")
    p.add_argument("--init", choices=INIT_MODES, default="img2img", help="start from the photo")
    p.add_argument("--adain", type=Path, help="inst: AdaIN the content latent toward this image")
    p.add_argument("--lora", type=Path, help="LoRA exported from the run (instead of its δ)")
    p.add_argument("--resolution", type=int, help="default: the model's native size")
    p.add_argument(
        "--batch-size",
        type=_batch_size,
        default=AUTO,
        help="(photo, seed) images per UNet batch (default auto: from free GPU memory; 4 on CPU)",
    )
    p.add_argument("--prompt", help="override the run's prompt")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    p.add_argument("--channels-last", action="store_true", help="NHWC convolutions (speed)")
    p.add_argument("--fuse-qkv", action="store_true", help="fused attention projections (speed)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the UNet and VAE (~1 min; long runs only)",
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="remake every image (default: keep the images an interrupted call with the same "
        "settings wrote)",
    )
    p.set_defaults(func=_stylize_cmd)
