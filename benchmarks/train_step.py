"""Seconds per step and peak GPU memory of the three training modes, through ``svdinst.training.loop``.

Uses the ``sd14-random`` model (SD-1.4's exact shapes with random weights, built once into the
kit's cache: UNet 859.5 M with 768-wide cross-attention, the SD AutoencoderKL, a CLIP-L text tower
and a CLIP-L vision tower with projection; shapes set the cost), then runs the *real* training loop
(:func:`svdinst.training.loop.train`) for each mode at 512 px, batch 1, frozen weights in fp16:

    python benchmarks/train_step.py                       # modes inst / svdiff / svd-inst
    python benchmarks/train_step.py --memory-fraction t4  # cap at 15 GiB: does svd-inst fit a T4?
    python benchmarks/train_step.py --ddp --steps 20      # 1-GPU loss curve (global batch 2)
    accelerate launch --num_processes 2 benchmarks/train_step.py --ddp --steps 20   # 2 GPUs
    python benchmarks/train_step.py --small               # tiny shapes: runs on a CPU

``--write-report`` adds/replaces this script's own section of ``reports/benchmarks.md`` (other
sections are left alone). The ``--ddp`` runs save their loss curves to ``--work``; once both a
1- and a 2-process curve exist the largest per-step difference is printed (and reported).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from report_md import REPORT, write_block

HEADING = "Training step per mode (benchmarks/train_step.py)"
MODES = ("inst", "svdiff", "svd-inst")


def build_model(small: bool) -> Path:
    """The ``sd14-random`` model (SD-1.4's exact shapes, random weights), or with ``small`` the
    tiny one: built once into the kit's cache by the profiles' own builder (svdinst.models.layouts)."""
    from svdinst.models.loading import SD14_RANDOM, TINY, resolve_model

    return Path(resolve_model(TINY if small else SD14_RANDOM))


def style_image(out: Path) -> Path:
    """A deterministic 640×576 structured image (bands and stripes) as the style."""
    path = out / "style.png"
    if not path.exists():
        y, x = np.mgrid[0:576, 0:640]
        img = np.stack([(x * 0.7) % 256, (y * 1.1) % 256, ((x + y) // 40 % 2) * 200 + 30], -1)
        Image.fromarray(img.astype(np.uint8)).save(path)
    return path


def loop_config(
    args, model: Path, mode: str, steps: int, res: int, tag: str, batch: int = 1, **settings
):
    """The ``TrainConfig`` every training benchmark runs (``args``: ``work``, ``small``,
    ``precision``, ``gradient_checkpointing``); ``settings``: further fields (``step_mode``…)."""
    from svdinst.training.config import TrainConfig

    # One checkpoint, after the last step: the default interval (10 % of the steps) would put a
    # checkpoint in every other timed step of a 25-step run, and its device→host copies and file
    # write (~30-60 ms at SD-1.4 size, two to three times a graphed step) would be the median.
    # A 1000-step run checkpoints every 100 steps; benchmarks/train_profile.py found this.
    settings.setdefault("checkpoint_every", steps)
    return TrainConfig(
        model=str(model), style=[str(style_image(args.work))], out=str(args.work / "runs" / tag),
        mode=mode, steps=steps, resolution=res, batch_size=batch, crop_pool=4, progress=False,
        mixed_precision="no" if args.small else args.precision,
        gradient_checkpointing=args.gradient_checkpointing, lr=1e-3, warmup_steps=0, **settings,
    )  # fmt: skip


def run_mode(
    args, model: Path, mode: str, steps: int, batch: int, res: int, tag: str, **settings
) -> dict:
    """Train ``steps`` steps; time per step (after 3 warm-up steps) and peak memory of the loop.
    ``settings``: further ``TrainConfig`` fields (e.g. ``step_mode``)."""
    import gc

    from svdinst.training.loop import train

    cuda = torch.cuda.is_available()
    gc.collect()  # the previous mode's model goes before this one loads
    if cuda:
        torch.cuda.empty_cache()
    times: list[float] = []
    last = [time.perf_counter()]

    def on_step(step: int, loss: float) -> None:
        if cuda:
            torch.cuda.synchronize()
        now = time.perf_counter()
        if step > 3:
            times.append(now - last[0])
        elif step == 3 and cuda:  # the loop's steady state, not the set-up (SVD, VAE pool)
            torch.cuda.reset_peak_memory_stats()
        last[0] = now

    config = loop_config(args, model, mode, steps, res, tag, batch=batch, **settings)
    row = {"mode": mode, "resolution": res, "batch": batch, "steps": steps}
    try:
        result = train(config, overwrite=True, callback=on_step)
    except torch.cuda.OutOfMemoryError as err:
        return {**row, "error": f"out of memory ({str(err).splitlines()[0][:80]})"}
    row["losses"], row["step_mode"] = result.losses, result.step_mode
    row["s_per_step"] = statistics.median(times) if times else float("nan")
    row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    # A CUDA graph's activations live in its private pool, which replays never allocate from:
    # the reserved peak is the number that includes them.
    row["reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30 if cuda else float("nan")
    return row


def table(rows: list[dict], title: str) -> str:
    lines = [f"**{title}**", "", "| mode | px | batch | s/step (median) | peak GiB | note |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['mode']} | {r['resolution']} | {r['batch']} | – | – | {r['error']} |"
            )
        else:
            lines.append(f"| {r['mode']} | {r['resolution']} | {r['batch']} | "
                         f"{r['s_per_step']:.3f} | {r['peak_gib']:.2f} | |")  # fmt: skip
    return "\n".join(lines)


def device_name() -> str:
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        return f"{p.name} ({p.total_memory / 2**30:.0f} GiB), torch {torch.__version__}"
    return f"CPU ({os.cpu_count()} cores), torch {torch.__version__}"


def _ddp_record(path: Path) -> dict:
    """A saved 1- or N-process run: its loss curve, s/step and peak memory (old files: curve only)."""
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else {"losses": data}


def ddp(args, model: Path) -> str:
    """Loss curve at a fixed global batch; compare 1 vs N processes once both curves exist."""
    from accelerate import PartialState

    state = PartialState()
    res = 64 if args.small else args.ddp_resolution
    row = run_mode(
        args, model, args.ddp_mode, args.steps, args.ddp_batch, res, f"ddp-{state.num_processes}"
    )
    if not state.is_main_process:
        return ""
    curve = row.get("losses", [])
    record = {"losses": curve, "s_per_step": row.get("s_per_step"), "peak_gib": row.get("peak_gib")}
    (args.work / f"ddp_curve_{args.ddp_mode}_{state.num_processes}.json").write_text(
        json.dumps(record)
    )
    print(f"{state.num_processes} process(es), global batch {args.ddp_batch}, {res} px: "
          + " ".join(f"{v:.4f}" for v in curve))  # fmt: skip
    files = {
        int(p.stem.rsplit("_", 1)[1]): p
        for p in args.work.glob(f"ddp_curve_{args.ddp_mode}_*.json")
    }
    if 1 in files and len(files) > 1:
        prec = args.precision if torch.cuda.is_available() else "fp32 (CPU)"
        one = _ddp_record(files[1])
        lines = [f"**Multi-GPU check** ({device_name()}): {args.ddp_mode}, global batch {args.ddp_batch} "
                 f"(split over the processes), {res} px, {args.steps} steps, frozen weights {prec}. "
                 "Speed-up = 1-process s/step ÷ N-process s/step (medians after 3 warm-up steps, same "
                 "machine). In svd-inst the dropout masks of the image→token module are drawn per process; "
                 "svdiff has no dropout.", "",
                 "| processes | s/step | speed-up | peak GiB/GPU | first loss | last loss | max abs diff vs 1 process |",
                 "|---|---|---|---|---|---|---|"]  # fmt: skip
        for n, path in sorted(files.items()):
            other = _ddp_record(path)
            curve, ref = other["losses"], one["losses"]
            diff = max(abs(a - b) for a, b in zip(ref, curve)) if curve else float("nan")
            t, t1 = other.get("s_per_step"), one.get("s_per_step")
            speed = f"{t1 / t:.2f}×" if t and t1 else "–"
            t_cell = f"{t:.3f}" if t else "–"
            peak = other.get("peak_gib")
            mem = f"{peak:.2f}" if peak and peak == peak else "–"  # NaN on a CPU
            lines.append(
                f"| {n} | {t_cell} | {speed} | {mem} | {curve[0]:.4f} | {curve[-1]:.4f} | {diff:.2e} |"
            )
        text = "\n".join(lines)
        print(text)
        return text
    return ""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", action="store_true", help="tiny shapes (CPU)")
    p.add_argument("--steps", type=int, default=25, help="steps per mode (3 warm-up)")
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--modes", nargs="+", default=list(MODES))
    p.add_argument("--precision", default="fp16", help="mixed precision of the frozen parts")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--memory-fraction", default=None,
                   help="cap GPU memory: a fraction, or 't4' = 15 GiB / total")  # fmt: skip
    p.add_argument("--ddp", action="store_true", help="loss-curve mode for 1 vs N GPUs")
    p.add_argument("--ddp-batch", type=int, default=2)
    p.add_argument(
        "--ddp-mode", default="svd-inst", help="svdiff has no dropout: curves match exactly"
    )
    p.add_argument("--ddp-resolution", type=int, default=256)
    p.add_argument(
        "--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "svdinst-bench"
    )
    p.add_argument("--write-report", action="store_true")
    p.add_argument("--report", type=Path, default=REPORT)
    args = p.parse_args(argv)
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # one per process under a launcher
    args.work.mkdir(parents=True, exist_ok=True)
    with state.main_process_first():  # the main process builds; the others then read it
        model = build_model(args.small)
        style_image(args.work)
    title = device_name()
    if args.memory_fraction and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        frac = 15 / total if args.memory_fraction == "t4" else float(args.memory_fraction)
        torch.cuda.set_per_process_memory_fraction(min(frac, 1.0))
        title += f", capped at {frac * total:.1f} GiB (set_per_process_memory_fraction {frac:.3f})"
    if args.ddp:
        text = ddp(args, model)
    else:
        res = 64 if args.small else args.resolution
        rows = [run_mode(args, model, m, args.steps, 1, res, m) for m in args.modes]
        cuda = torch.cuda.is_available()
        prec = f"{args.precision} frozen weights" if cuda else "fp32 (CPU)"
        extra = ", gradient checkpointing" if args.gradient_checkpointing else ""
        text = table(
            rows, f"{title}; {prec}{extra}; {'small shapes' if args.small else 'SD-1.4 shapes'}"
        )
        print(text)
    if args.write_report and text:
        key = f"ddp-{args.ddp_mode}" if args.ddp else "modes"
        key += f"-cap{args.memory_fraction}" if args.memory_fraction else ""
        key += ("-gc" if args.gradient_checkpointing else "") + ("-small" if args.small else "")
        write_block(args.report, "train_step", HEADING, text, key)
        print(f"Updated {args.report}")


if __name__ == "__main__":
    sys.exit(main())
