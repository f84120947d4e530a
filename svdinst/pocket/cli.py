"""``svdinst pocket pretrain`` and ``svdinst pocket verify`` (the pocket base model's commands)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from svdinst.errors import ModelNotFoundError, SvdinstError
from svdinst.formats.checksums import verify_checksums
from svdinst.formats.run_folder import RunFolder
from svdinst.models.layout_config import POCKET_LAYOUTS
from svdinst.pocket.config import PocketConfig

PRESET = "pocket-v2"  # the recipe `svdinst pocket pretrain` follows unless --preset says otherwise


def _pretrain(args: argparse.Namespace) -> int:
    from svdinst.pocket.pretrain import pretrain  # heavy (torch): only when run

    given = {
        "seed": args.seed,
        "resolution": args.resolution,
        "vae_steps": args.vae_steps,
        "unet_steps": args.unet_steps,
        "batch_size": args.batch_size,
        "init_from": args.init_from,
    }
    try:
        config = PocketConfig.preset(
            args.preset, **{k: v for k, v in given.items() if v is not None}
        )
    except ValueError as err:  # flags that contradict each other or the preset: one line
        raise SvdinstError(f"{err} (preset {args.preset})") from err
    result = pretrain(
        config,
        args.out,
        args.work,
        resume=args.resume,
        device=args.device,
        checkpoint_every=args.checkpoint_every,
        max_seconds=None if args.max_minutes is None else args.max_minutes * 60,
        progress=not args.no_progress,
        overwrite=args.overwrite,
    )
    return 0 if result.out is not None else 3  # 3: stopped early, resumable


def _verify(args: argparse.Namespace) -> int:
    if not Path(args.dir).is_dir():
        raise ModelNotFoundError(f"'{args.dir}' is not a folder; pass a pocket model folder.")
    problems = verify_checksums(args.dir)
    for line in problems:
        print(f"{args.dir}: {line}", file=sys.stderr)
    if not problems:
        print(f"{args.dir}: every file matches SHA256SUMS")
    return 1 if problems else 0


def _vae_check(args: argparse.Namespace) -> int:
    from svdinst.pocket.vae_check import run_vae_check  # heavy (torch): only when run

    m = run_vae_check(args.model, args.out, resolution=args.resolution)
    vae, ref = m["vae"], m["resize_reference"]
    print(f"{args.model}: VAE on {vae['n']} held-out proxy crops at {m['resolution']} px: PSNR "
          f"{vae['psnr']:.2f} dB, SSIM {vae['ssim']:.3f} (bicubic ÷{m['factor']} and back: "
          f"{ref['psnr']:.2f} dB, {ref['ssim']:.3f}); figure {m['figure']}")  # fmt: skip
    return 0


def _denoise_check(args: argparse.Namespace) -> int:
    from svdinst.pocket.denoise_check import run_denoise_check  # heavy (torch): only when run
    from svdinst.pocket.denoise_report import denoise_check_markdown

    m = run_denoise_check(args.model, args.out)
    print(f"{args.model}: one-step denoising at {m['resolution']} px, empty prompt\n")
    print(denoise_check_markdown(m))
    return 0


def _style_check(args: argparse.Namespace) -> int:
    from svdinst.pocket.style_check import run_style_check  # heavy (torch): only when run
    from svdinst.pocket.style_report import style_check_markdown

    m = run_style_check(args.model, args.out, steps=args.steps, guidance=args.guidance)
    print(f"{args.model}: samples from noise at {m['resolution']} px, {m['steps']} DDIM steps, "
          f"guidance {m['guidance']:g}; figure {args.out / m['figure']}\n")  # fmt: skip
    print(style_check_markdown(m))
    return 0


def _select(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from svdinst.course.context import CourseContext  # heavy (torch): only when run
    from svdinst.course.profiles import POCKET_PROFILES, get_profile
    from svdinst.data.default import ensure_dataset
    from svdinst.device import default_device
    from svdinst.formats.atomic import write_text_atomic
    from svdinst.models.loading import pocket_model_path
    from svdinst.pocket.report import SELECTION_NAME
    from svdinst.pocket.select import select_settings, selection_markdown

    overrides = {"model": str(args.model)} if args.model else {}
    if args.profile in POCKET_PROFILES:  # a pocket version's settings before it is the default
        # ... and its own weights: the profile's model name "pocket" means the default version
        overrides.setdefault("model", str(pocket_model_path(args.profile)))
        profile = replace(POCKET_PROFILES[args.profile], **overrides)
    else:
        profile = get_profile(args.profile, **overrides)
    ctx = CourseContext(profile, args.workdir.resolve(), default_device())
    ensure_dataset(ctx.data_dir)
    result = select_settings(ctx)
    text = selection_markdown(result)
    out = ctx.reports_dir / "pocket" / SELECTION_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, "# Pocket experiment: settings chosen on the training styles\n\n" + text)
    print(text + f"\nwritten to {out}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``svdinst pocket {pretrain,verify}``."""
    pocket = subparsers.add_parser("pocket", help="pretrain or verify the pocket base model")
    sub = pocket.add_subparsers(dest="pocket_command", required=True, metavar="ACTION")
    p = sub.add_parser(
        "pretrain",
        help="train the pocket VAE + UNet on offline photo crops into a pipeline folder",
        description="Train the pocket model (VAE, then UNet) on crops of the offline photos and "
        "write an fp16 diffusers pipeline folder with a model card and SHA256SUMS. Defaults are "
        "the preset's GPU recipe (pocket-v2: seven procedural styles, 128 px, 1,500 VAE + 2,500 "
        "UNet steps at batch 128, ~7 min on one H100; pocket-v3: pocket-v2's UNet trained further "
        "on its frozen VAE; pocket-v4: pocket-v3's trained further on ten styles; pocket-v5: a "
        "wider UNet from scratch on pocket-v2's VAE; pocket-v1: "
        "photos only, 96 px, 3,000 + 8,000 steps at batch 32); it also runs, slowly, on a CPU.",
    )
    p.add_argument("--out", type=Path, required=True, help="pipeline folder to write")
    p.add_argument("--preset", default=PRESET, choices=tuple(POCKET_LAYOUTS),
                   help=f"recipe whose defaults the other flags replace (default {PRESET})")  # fmt: skip
    p.add_argument("--work", type=Path, default=None,
                   help=f"checkpoints and {RunFolder.LOG} (default: OUT-work next to OUT)")  # fmt: skip
    p.add_argument("--seed", type=int, default=None,
                   help="initial weights, crops, noise (default: the preset's)")  # fmt: skip
    p.add_argument("--vae-steps", type=int, default=None,
                   help="autoencoder steps (default: the preset's)")  # fmt: skip
    p.add_argument("--unet-steps", type=int, default=None,
                   help="UNet steps (default: the preset's)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=None,
                   help="crops per step (default: the preset's)")  # fmt: skip
    p.add_argument("--init-from", default=None, metavar="FOLDER",
                   help="continue from this pocket model (its VAE frozen; needs --vae-steps 0), "
                   "or a shipped version's name (default: the preset's)")  # fmt: skip
    p.add_argument("--resolution", type=int, default=None,
                   help="crop side in px, a multiple of 16 (default: the preset's)")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1…")
    p.add_argument("--resume", action="store_true", help="continue from WORK's newest checkpoint")
    p.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop with a checkpoint after this long (exit 3); --resume continues")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty OUT svdinst did not make (only its files replaced)")  # fmt: skip
    p.set_defaults(func=_pretrain)
    v = sub.add_parser("verify", help="recompute a pocket folder's SHA256SUMS (exit 1 on mismatch)")
    v.add_argument("dir", type=Path, metavar="DIR")
    v.set_defaults(func=_verify)
    c = sub.add_parser(
        "vae-check",
        help="PSNR/SSIM of the VAE on held-out mural-proxy crops, and a texture figure",
    )
    c.add_argument("model", metavar="MODEL", help="a pocket model folder, or `pocket`")
    c.add_argument("--out", type=Path, required=True, help="folder for the JSON and the figure")
    c.add_argument("--resolution", type=int, default=None,
                   help="crop side (default: the VAE's sample_size)")  # fmt: skip
    c.set_defaults(func=_vae_check)
    d = sub.add_parser(
        "denoise-check",
        help="does the UNet denoise held-out photos as well as its pretraining photos?",
    )
    d.add_argument("model", metavar="MODEL", help="a pocket model folder, or `pocket`")
    d.add_argument("--out", type=Path, required=True, help="folder for the JSON")
    d.set_defaults(func=_denoise_check)
    k = sub.add_parser(
        "style-check",
        help="does the UNet draw the style its caption names? (samples from noise, classified)",
    )
    k.add_argument("model", metavar="MODEL", help="a pocket model folder, or `pocket`")
    k.add_argument("--out", type=Path, required=True, help="folder for the JSON and the figure")
    k.add_argument("--steps", type=int, default=50, help="DDIM steps per sample (default 50)")
    k.add_argument("--guidance", type=float, default=3.0,
                   help="classifier-free guidance (default 3, the pocket profile's)")  # fmt: skip
    k.set_defaults(func=_style_check)
    s = sub.add_parser(
        "select",
        help="choose the lrs, start, strength and guidance on a held-out TRAINING style image "
        "(never a test photo)",
    )
    s.add_argument(
        "--workdir", type=Path, default=Path("."), help="WORKDIR (data/, outputs/, reports/)"
    )
    s.add_argument(
        "--profile",
        default="pocket",
        help=f"course profile, or {' / '.join(POCKET_LAYOUTS)} (default pocket)",
    )
    s.add_argument("--model", type=Path, default=None, help="model folder instead of the profile's")
    s.set_defaults(func=_select)
