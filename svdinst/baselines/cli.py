"""``svdinst baseline NAME {train,stylize}``; :func:`train_baseline` and :func:`stylize_folder`
behind it are what notebook 06 calls.

    svdinst baseline cyclegan train --content data/content --style data/style --steps 20000 \\
        --out runs/cyclegan --checkpoint-every 1000 [--resume]
    svdinst baseline cyclegan stylize --run runs/cyclegan --content data/test \\
        --out outputs/cyclegan
    svdinst baseline magenta stylize --content data/test --style data/style --out outputs/magenta

Outputs follow the kit's outputs format (:class:`svdinst.formats.outputs.OutputsFolder`): one
image per photo, sampling seed 0 (every baseline is deterministic), plus the settings file. Unknown names, missing folders and unusable runs
raise :class:`~svdinst.errors.SvdinstError`, which the ``svdinst`` command prints as one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from svdinst.errors import RunFolderError, SvdinstError
from svdinst.formats.folders import check_writable

if TYPE_CHECKING:
    from svdinst.baselines.base import Baseline

# Training memory per sample at 256 px (GiB): peak ÷ batch from the H100 throughput run
# (reports/benchmarks.md, "Baselines"); an upper bound, since the peak includes the weights, the
# optimizer state and the VGG loss network. Host RAM per sample on a CPU is taken to be the same.
SAMPLE_GIB_AT_256 = {
    "adain": 9.3 / 8,
    "balagan": 76.6 / 32,
    "cyclegan": 10.3 / 1,
    "fast_style": 9.3 / 4,
    "stargan": 35.7 / 16,
    "stytr2": 17.0 / 8,
}
SIZES = ("full", "pocket", "tiny")  # --size: the paper's networks, the shipped runs', CPU demos
DEFAULT_SAMPLE_GIB = 2.5  # a method not measured yet: about the largest measured one
CUDA_SHARE = 0.8  # of the free device memory: the allocator's fragmentation and cuDNN workspaces
CPU_SHARE = 0.5  # of the available host RAM: the kernel, the data set and the OS keep the rest


def available_memory_gib(device: str) -> float:
    """Free memory for training on ``device`` in GiB: free CUDA memory, or available host RAM."""
    import torch  # here, not at the top: `svdinst --help` imports this module

    if str(device).startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return free / 2**30
    with open("/proc/meminfo") as fh:  # Linux (Colab, the GPU boxes); else the total below
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def memory_batch_size(cls: type[Baseline], config: Any, device: str) -> tuple[int, str]:
    """The paper's batch where it fits ``device``'s memory, else the largest that does.

    Args:
        cls (`type[Baseline]`): the baseline class (its name keys :data:`SAMPLE_GIB_AT_256`).
        config: its config (``batch_size`` = the paper's, ``resolution`` = training crops).
        device (`str`): ``"cpu"`` or ``"cuda[:k]"``.

    Returns:
        `tuple[int, str]`: the batch and one line saying what was chosen and why.
    """
    paper = int(config.batch_size)
    per_sample = (
        SAMPLE_GIB_AT_256.get(cls.name, DEFAULT_SAMPLE_GIB) * (config.resolution / 256) ** 2
    )
    cuda = str(device).startswith("cuda")
    share = CUDA_SHARE if cuda else CPU_SHARE
    budget = share * available_memory_gib(device)
    fits = max(1, int(budget // per_sample))
    batch = min(paper, fits)
    where = f"{budget:.1f} GiB ({share:.0%} of the free {'GPU memory' if cuda else 'host RAM'})"
    why = (
        f"{cls.name}: batch {batch} (paper: {paper}); ~{per_sample:.2f} GiB per sample at "
        f"{config.resolution} px, {where}"
    )
    if batch < paper:
        why += "; --batch-size overrides"
    return batch, why


def build_config(
    cls: type[Baseline],
    *,
    size: str = "full",
    resolution: int | None = None,
    vgg_weights: str | os.PathLike | None = None,
    batch_size: int | None = None,
) -> Any:
    """A baseline's config: the paper's (``size="full"``) or the narrow CPU one (``"tiny"``).

    Args:
        cls: a registered baseline class.
        size (`str`, defaults to ``"full"``): ``"full"`` (published defaults), ``"pocket"``
            (the shipped runs' reduced widths and scaled schedules,
            :func:`svdinst.baselines.pocket_scale.pocket_config`) or ``"tiny"``.
        resolution (`int`, *optional*): training crop size; defaults to the config's.
        vgg_weights (*optional*): an ImageNet VGG weights file (VGG-based methods only).
        batch_size (`int`, *optional*): replaces the paper's batch size (e.g. to fit a 16 GB T4).
    """
    if size not in SIZES:
        raise SvdinstError(f"--size must be one of {', '.join(SIZES)}; got {size!r}.")
    if size == "pocket":
        from svdinst.baselines.pocket_scale import RESOLUTION, pocket_config

        config = pocket_config(cls, resolution or RESOLUTION)
    elif size == "tiny":
        config = cls.tiny_config(**({"resolution": resolution} if resolution else {}))
    else:
        config = cls.config_class()
        if resolution:
            config = dataclasses.replace(config, resolution=resolution)
    if vgg_weights is not None:
        if "vgg_weights" not in {f.name for f in dataclasses.fields(config)}:
            raise SvdinstError(f"{cls.name} uses no VGG network; drop --vgg-weights.")
        if not Path(vgg_weights).is_file():
            raise SvdinstError(f"--vgg-weights file '{vgg_weights}' does not exist.")
        # A VGG file means the paper's VGG loss network instead of the Inception substitute.
        config = dataclasses.replace(config, vgg_weights=str(vgg_weights), loss_backbone="vgg")
    if batch_size is not None:
        if "batch_size" not in {f.name for f in dataclasses.fields(config)}:
            raise SvdinstError(f"{cls.name} has no batch size to set; drop --batch-size.")
        if batch_size < 1:
            raise SvdinstError(f"--batch-size must be ≥ 1, got {batch_size}.")
        config = dataclasses.replace(config, batch_size=batch_size)
    return config


def stylize_folder(
    model: Baseline,
    content_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    style_dir: str | os.PathLike | None = None,
    resolution: int | None = None,
    settings: dict[str, Any] | None = None,
    max_photos: int | None = None,
) -> list[Path]:
    """Stylize every photo of ``content_dir`` into the outputs folder ``out_dir`` (seed 0).

    Args:
        model: a trained (or pretrained) baseline.
        content_dir: photos to stylize (validated by :func:`svdinst.data.list_images`).
        out_dir: the method's output folder, e.g. ``WORKDIR/outputs/cyclegan``.
        style_dir (*optional*): style images, required by arbitrary-style methods.
        resolution (`int`, *optional*): center-crop-resize photos to this size first (the other
            methods' outputs are at the profile's resolution); default keeps each photo's size.
        settings (*optional*): extra entries for the settings file (e.g. the run folder).
        max_photos (`int`, *optional*): only the first ``max_photos`` photos (sorted by name), as
            the diffusion methods stylize them under a profile's ``test_photos``.

    Returns:
        `list[Path]`: the written images, in content order.
    """
    # Imported here so `svdinst --help` stays fast (this module registers the CLI).
    import svdinst
    from svdinst.data import center_crop_resize, list_images, load_image
    from svdinst.formats.outputs import OutputsFolder

    paths = list_images(content_dir)[:max_photos]
    photos = [load_image(p) for p in paths]
    if resolution:
        photos = [center_crop_resize(im, resolution) for im in photos]
    style = None
    if model.uses_style_at_inference:
        if style_dir is None:
            raise SvdinstError(f"{model.name} takes style images: pass --style DIR.")
        style = [load_image(p) for p in list_images(style_dir)]
    results = model.stylize(photos, style)
    out = OutputsFolder(out_dir)
    out.clear()  # no stale photos of an earlier content folder beside the new outputs
    written = [
        out.save_image(path.stem, 0, image) for path, image in zip(paths, results, strict=True)
    ]
    config = dataclasses.asdict(model.config) if dataclasses.is_dataclass(model.config) else {}
    record = {
        "method": model.name,
        "content": str(Path(content_dir).resolve()),
        "style": str(Path(style_dir).resolve()) if style_dir is not None else None,
        "resolution": resolution,
        "seeds": [0],
        "deterministic": True,
        "device": model.device,
        "svdinst_version": svdinst.__version__,
        "config": config,
        "backbone": model.backbone,  # with train_steps: what the report's Table I reads
        "train_steps": model.train_steps,
        **(settings or {}),
    }
    out.write_settings(record)
    return written


def train_baseline(
    name: str,
    content_dir: str | os.PathLike,
    style_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    steps: int,
    *,
    size: str = "full",
    resolution: int | None = None,
    vgg_weights: str | os.PathLike | None = None,
    batch_size: int | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
) -> Baseline:
    """Train baseline ``name`` into the run folder ``out_dir`` and save it (what ``train`` runs).

    Args:
        name (`str`): a registered baseline.
        content_dir, style_dir: photo and style folders.
        out_dir: the run folder (:class:`svdinst.formats.run_folder.RunFolder`: settings, the
            trained network, the loss log, checkpoints).
        steps (`int`): total training iterations.
        size, resolution, vgg_weights, batch_size: see :func:`build_config` (ignored when
            resuming: a resumed run keeps the settings it saved). Without ``batch_size`` the
            papers' networks (``size="full"``) train at :func:`memory_batch_size`: the paper's
            batch where it fits the device's memory, else the largest that does (printed).
        checkpoint_every (`int`, defaults to 0): write a resumable checkpoint every K steps.
        resume (`bool`, defaults to `False`): continue from the newest checkpoint.
        seed (`int`, defaults to 0): data order and augmentation.
        device (`str`, defaults to ``"auto"``): where to train.
        overwrite (`bool`, defaults to `False`): replace a trained model (and its checkpoints
            and log) already in ``out_dir``; without it such a folder is an error.
    """
    # Imported here so `svdinst --help` stays fast (this module registers the CLI).
    from svdinst.baselines.registry import get_baseline
    from svdinst.data import list_images
    from svdinst.device import default_device
    from svdinst.formats.run_folder import RunFolder

    cls = get_baseline(name)
    list_images(content_dir)  # one clear line when a folder is missing, empty or broken
    list_images(style_dir)
    out = Path(out_dir)
    run = RunFolder(out)
    if steps < 0:
        raise SvdinstError(f"--steps must be ≥ 0, got {steps}.")
    if overwrite and not resume:
        run.clear()
    elif not resume and run.model.exists():
        raise RunFolderError(
            f"'{out}' already holds a trained {name}: pass --overwrite to retrain it, --resume to "
            "continue it, or another --out."
        )
    if resume and run.has_config():
        config = cls.read_config(out)
    else:
        if run.has_checkpoints():
            raise RunFolderError(
                f"'{out}' already holds checkpoints: pass --resume to continue, or another --out."
            )
        config = build_config(
            cls, size=size, resolution=resolution, vgg_weights=vgg_weights, batch_size=batch_size
        )
        if batch_size is None and size == "full" and hasattr(config, "batch_size"):
            # The papers' batches assume big GPUs (BalaGAN's 64 took 15 GB of host RAM on a CPU).
            target = default_device() if device == "auto" else device
            batch, why = memory_batch_size(cls, config, target)
            print(why)
            config = dataclasses.replace(config, batch_size=batch)
    model = cls(config, device=device)
    model.train_steps = steps
    model.save_config(out)
    losses = model.fit(
        content_dir, style_dir, steps, out_dir=out, checkpoint_every=checkpoint_every,
        resume=resume, seed=seed,
    )  # fmt: skip
    model.save(out)
    last = f"; last loss {losses[-1]:.4f}" if losses else ""
    print(f"{cls.name}: ran {len(losses)} step(s) on {model.device}{last}; saved to {out}")
    return model


def _train(args: argparse.Namespace) -> int:
    train_baseline(
        args.name, args.content, args.style, args.out, args.steps, size=args.size,
        resolution=args.resolution, vgg_weights=args.vgg_weights, batch_size=args.batch_size,
        checkpoint_every=args.checkpoint_every, resume=args.resume, seed=args.seed,
        device=args.device, overwrite=args.overwrite,
    )  # fmt: skip
    return 0


def _stylize(args: argparse.Namespace) -> int:
    from svdinst.baselines.registry import get_baseline

    cls = get_baseline(args.name)
    check_writable(args.out, what="the stylized images")  # before the model loads
    if args.run is not None:
        model = cls.load(args.run, device=args.device)
    elif cls.needs_training:
        raise SvdinstError(
            f"{cls.name} needs a trained run: pass --run RUN "
            f"(made by `svdinst baseline {cls.name} train ... --out RUN`)."
        )
    else:
        model = cls(device=args.device)
    written = stylize_folder(
        model, args.content, args.out, style_dir=args.style, resolution=args.resolution,
        settings={"run": str(Path(args.run).resolve()) if args.run else None},
    )  # fmt: skip
    print(f"{cls.name}: wrote {len(written)} image(s) to {args.out}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``svdinst baseline NAME {train,stylize}``."""
    parser = subparsers.add_parser(
        "baseline",
        help="train or apply a comparison method (cyclegan, stargan, balagan, stytr2, "
        "fast_style, adain, magenta)",
    )
    parser.add_argument("name", metavar="NAME", help="registered baseline name")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    train = actions.add_parser("train", help="train NAME on a content and a style folder")
    train.add_argument("--content", type=Path, required=True, metavar="DIR", help="photos")
    train.add_argument("--style", type=Path, required=True, metavar="DIR", help="style images")
    train.add_argument("--steps", type=int, required=True, metavar="N", help="iterations")
    train.add_argument("--out", type=Path, required=True, metavar="RUN", help="run folder")
    train.add_argument("--checkpoint-every", type=int, default=0, metavar="K", help="0: none")
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    train.add_argument("--overwrite", action="store_true", help="replace a model already in --out")
    train.add_argument("--resolution", type=int, default=None, metavar="R", help="crop px")
    train.add_argument("--seed", type=int, default=0, metavar="S")
    train.add_argument("--device", default="auto", metavar="D", help="auto, cpu, cuda…")
    train.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="B",
        help="default: the paper's where it fits the device's memory (printed)",
    )
    train.add_argument(
        "--vgg-weights",
        default=None,
        metavar="FILE",
        help="ImageNet VGG .pth: the papers' loss network (default: the Inception substitute)",
    )
    train.add_argument(
        "--size", default="full", choices=SIZES,
        help="full: the paper's widths; pocket: the shipped runs' (128 px, reduced widths, "
        "scaled schedules); tiny: narrow networks for CPU demos",
    )  # fmt: skip
    train.set_defaults(func=_train)
    sty = actions.add_parser("stylize", help="stylize a folder of photos with NAME")
    sty.add_argument("--run", type=Path, default=None, metavar="RUN", help="from `train`")
    sty.add_argument("--content", type=Path, required=True, metavar="DIR", help="photos")
    sty.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    sty.add_argument(
        "--style",
        type=Path,
        default=None,
        metavar="DIR",
        help="style images (stytr2, adain, magenta)",
    )
    sty.add_argument(
        "--resolution", type=int, default=None, metavar="R", help="center-crop to R px"
    )
    sty.add_argument("--device", default="auto", metavar="D")
    sty.set_defaults(func=_stylize)
