"""Seconds per step and peak GPU memory of the three training modes, through ``svdinst.train``.

Builds an SD-1.4-*shaped* pipeline folder with random weights (shapes set the cost): the UNet
(diffusers' default config, 768-wide cross-attention), the SD AutoencoderKL, a CLIP-L text tower
(hidden 768, 12 layers) and a CLIP-L vision tower with projection (hidden 1024, 24 layers,
16 heads, patch 14, 224 px, projection 768), then runs the *real* training loop
(:func:`svdinst.train.train`) for each mode at 512 px, batch 1, frozen weights in fp16:

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
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from report_md import write_block

HEADING = "Training step per mode (benchmarks/train_step.py)"
MODES = ("inst", "svdiff", "svd-inst")


def build_model(out: Path, small: bool) -> Path:
    """Write an SD-1.4-shaped (or, with ``small``, tiny) random-weight pipeline folder."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    from svdinst.models import resolve_model

    tag = out / ("small" if small else "sd14-shaped")
    if (tag / "unet" / "config.json").exists():
        return tag
    tiny = Path(resolve_model("tiny"))  # its tokenizer and scheduler folders are SD-1.4's
    staging = out / f".{tag.name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        if small:
            unet = UNet2DConditionModel(block_out_channels=(32, 32, 64, 64), layers_per_block=1,
                                        cross_attention_dim=64, norm_num_groups=16, sample_size=8)  # fmt: skip
            vae = AutoencoderKL(block_out_channels=(16, 16, 32, 32), norm_num_groups=8,
                                down_block_types=("DownEncoderBlock2D",) * 4,
                                up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4)  # fmt: skip
            text = CLIPTextConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                                  num_attention_heads=4, projection_dim=64)  # fmt: skip
            vision = CLIPVisionConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                                      num_attention_heads=4, image_size=32, patch_size=8,
                                      projection_dim=64)  # fmt: skip
        else:
            unet = UNet2DConditionModel(cross_attention_dim=768, sample_size=64)  # SD-1.4's UNet
            vae = AutoencoderKL(  # SD-1.4's VAE config
                block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512,
            )  # fmt: skip
            text = CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                  num_attention_heads=12, projection_dim=768)  # CLIP-L text  # fmt: skip
            vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096,
                                      num_hidden_layers=24, num_attention_heads=16, patch_size=14,
                                      image_size=224, projection_dim=768)  # CLIP-L vision  # fmt: skip
        text.max_position_embeddings, text.hidden_act = 77, "quick_gelu"
        vision.hidden_act = "quick_gelu"
        parts = {
            "unet": unet,
            "vae": vae,
            "text_encoder": CLIPTextModel(text),
            "image_encoder": CLIPVisionModelWithProjection(vision),
        }
    dtype = torch.float32 if small else torch.float16  # halves the folder; loads back as fp32
    for name, module in parts.items():
        module.to(dtype).save_pretrained(staging / name)
    size = 32 if small else 224
    CLIPImageProcessor(size={"shortest_edge": size},
                       crop_size={"height": size, "width": size}).save_pretrained(staging / "feature_extractor")  # fmt: skip
    for name in ("tokenizer", "scheduler"):  # the real CLIP vocabulary; SD-1.4's schedule
        shutil.copytree(tiny / name, staging / name)
    shutil.copy(tiny / "model_index.json", staging / "model_index.json")
    os.replace(staging, tag)
    return tag


def style_image(out: Path) -> Path:
    """A deterministic 640×576 structured image (bands and stripes) as the style."""
    path = out / "style.png"
    if not path.exists():
        y, x = np.mgrid[0:576, 0:640]
        img = np.stack([(x * 0.7) % 256, (y * 1.1) % 256, ((x + y) // 40 % 2) * 200 + 30], -1)
        Image.fromarray(img.astype(np.uint8)).save(path)
    return path


def run_mode(args, model: Path, mode: str, steps: int, batch: int, res: int, tag: str) -> dict:
    """Train ``steps`` steps; time per step (after 3 warm-up steps) and peak memory of the loop."""
    import gc

    from svdinst.train import train
    from svdinst.train_config import TrainConfig

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

    config = TrainConfig(
        model=str(model), style=[str(style_image(args.work))], out=str(args.work / "runs" / tag),
        mode=mode, steps=steps, resolution=res, batch_size=batch, crop_pool=4, progress=False,
        mixed_precision="no" if args.small else args.precision,
        gradient_checkpointing=args.gradient_checkpointing, lr=1e-3, warmup_steps=0,
    )  # fmt: skip
    row = {"mode": mode, "resolution": res, "batch": batch, "steps": steps}
    try:
        result = train(config, overwrite=True, callback=on_step)
    except torch.cuda.OutOfMemoryError as err:
        return {**row, "error": f"out of memory ({str(err).splitlines()[0][:80]})"}
    row["losses"] = result.losses
    row["s_per_step"] = statistics.median(times) if times else float("nan")
    row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
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
    (args.work / f"ddp_curve_{args.ddp_mode}_{state.num_processes}.json").write_text(
        json.dumps(curve)
    )
    print(f"{state.num_processes} process(es), global batch {args.ddp_batch}, {res} px: "
          + " ".join(f"{v:.4f}" for v in curve))  # fmt: skip
    files = {
        int(p.stem.rsplit("_", 1)[1]): p
        for p in args.work.glob(f"ddp_curve_{args.ddp_mode}_*.json")
    }
    if 1 in files and len(files) > 1:
        prec = args.precision if torch.cuda.is_available() else "fp32 (CPU)"
        one = json.loads(files[1].read_text())
        lines = [f"**Multi-GPU check** ({device_name()}): {args.ddp_mode}, global batch {args.ddp_batch}, "
                 f"{res} px, {args.steps} steps, frozen weights {prec}. In svd-inst the dropout masks of the "
                 "image→token module are drawn per process; svdiff has no dropout.", "",
                 "| processes | first loss | last loss | max abs diff vs 1 process |", "|---|---|---|---|"]  # fmt: skip
        for n, path in sorted(files.items()):
            other = json.loads(path.read_text())
            diff = max(abs(a - b) for a, b in zip(one, other)) if other else float("nan")
            lines.append(f"| {n} | {other[0]:.4f} | {other[-1]:.4f} | {diff:.2e} |")
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
    p.add_argument("--report", type=Path, default=Path("reports") / "benchmarks.md")
    args = p.parse_args(argv)
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # one per process under a launcher
    args.work.mkdir(parents=True, exist_ok=True)
    with state.main_process_first():  # the main process builds; the others then read it
        model = build_model(args.work, args.small)
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
