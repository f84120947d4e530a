"""The training loop users run, eager vs the CUDA-graph step, against the graphed TI floor.

In one process, on the ``sd14-random`` model (SD-1.4's exact shapes, random weights), through
the kit's real loop (:func:`svdinst.training.loop.train`, via ``train_step.run_mode``) at 512 px,
batch 1, the kit's default precision (``auto``: fp16 frozen weights on CUDA; default gradient
checkpointing, off on a ≥ 24 GiB card):

* ``inst`` / ``svdiff`` / ``svd-inst`` with ``step_mode="eager"`` and ``"graph"`` (s/step,
  peak memory, and how far the graph step's first 20 losses are from eager's);
* the floor: the textual-inversion step of ``spectral_step.py`` captured in a CUDA graph (TF32
  and bf16 autocast), and the same script's factored spectral step under bf16 autocast;

then prints the ratios svd-inst/inst, svd-inst/graphed TI and bf16-autocast spectral/TI.
``--ddp`` instead times the graph step at global batches 8 and 32 (svd-inst); run it once
plainly and once under ``accelerate launch --num_processes 2 --multi_gpu``: the second run
prints the 1- vs 2-process table. ``--smoke`` runs everything at toy sizes on a CPU.

    python benchmarks/train_loop.py --write-report                 # ~3 min on one H100
    python benchmarks/train_loop.py --ddp --write-report           # 1 GPU, batches 8 and 32
    accelerate launch --num_processes 2 --multi_gpu benchmarks/train_loop.py --ddp --write-report
    python benchmarks/train_loop.py --smoke                        # CPU, seconds
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

import torch
from report_md import REPORT, write_block
from train_step import build_model, device_name, run_mode, style_image

HEADING = "Training loop: eager vs CUDA-graph step (benchmarks/train_loop.py)"
MODES = ("inst", "svdiff", "svd-inst")
NHWC_MODES = ("inst", "svd-inst")  # also timed with channels_last=True (graph steps)
AGREE_STEPS = 20  # the fast path's losses are compared with eager's over these steps
LOSS_TOL = 5e-3  # |Δloss| on CUDA: fp16 kernels may differ under capture; a bug moves it ≫ 1e-2


def floors(smoke: bool, steps: int) -> dict[str, float]:
    """ms of spectral_step.py's TI step (graph on CUDA; TF32 and bf16 autocast) and of its
    factored spectral step under bf16 autocast, same functions, same process."""
    import gc

    from spectral_step import batch, build, make_step, timed

    from svdinst.spectral import SpectralShiftConfig, add_spectral_shifts, spectral_layers

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    gc.collect()  # the last train() run's model and graph pool go first
    if cuda:
        torch.cuda.empty_cache()
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        unet, encoder = build(smoke, device)
        inputs = batch(1, 8 if smoke else 64, encoder.config.vocab_size, device)
        emb = encoder.get_input_embeddings().weight
        out = {}
        emb.requires_grad_(True)
        for prec in ("tf32", "bf16-amp") if cuda else ("tf32",):
            step, _ = make_step(unet, encoder, [emb], inputs, prec != "tf32", device, graph=cuda)
            out[f"ti-{'graph' if cuda else 'eager-cpu'}-{prec}"] = timed(step, steps, 3, device)[0]
        emb.requires_grad_(False)
        emb.grad = None
        if cuda:
            shift_cfg = SpectralShiftConfig(fast=True, compute_dtype=torch.bfloat16)
            add_spectral_shifts(unet, config=shift_cfg)
            deltas = [lay.delta for lay in spectral_layers(unet).values()]
            step, _ = make_step(unet, encoder, deltas, inputs, True, device, graph=True)
            out["spectral-graph-bf16-amp"] = timed(step, steps, 3, device)[0]
        return out
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


def agreement(eager: list[float], fast: list[float]) -> float:
    """Largest |loss_fast − loss_eager| over the first ``AGREE_STEPS`` steps."""
    n = min(AGREE_STEPS, len(eager), len(fast))
    return max(abs(a - b) for a, b in zip(eager[:n], fast[:n])) if n else float("nan")


def modes_part(args, model: Path) -> tuple[str, dict]:
    res = 64 if args.smoke else 512
    rows = {}
    for mode in MODES:
        for step_mode in ("eager", "graph"):
            rows[mode, step_mode] = run_mode(args, model, mode, args.steps, 1, res,
                                             f"{mode}-{step_mode}", step_mode=step_mode,
                                             channels_last=False)  # fmt: skip
    for mode in NHWC_MODES:  # TrainConfig.channels_last: the UNet's convs in cuDNN's NHWC
        rows[mode, "graph-nhwc"] = run_mode(args, model, mode, args.steps, 1, res, f"{mode}-nhwc",
                                            step_mode="graph", channels_last=True)  # fmt: skip
    floor = floors(args.smoke, args.steps)
    cuda = torch.cuda.is_available()
    prec = "fp16 frozen weights (the kit's default on CUDA)" if cuda else "fp32 (CPU)"
    lines = [
        f"**{device_name()}**, {datetime.date.today()}; SD-1.4 shapes"
        + (" (--smoke: tiny model)" if args.smoke else "")
        + f", {res} px, batch 1, {prec}, through `svdinst.training.loop.train`; median s/step "
        f"after 3 steps of {args.steps}. `graph` = the step of `svdinst.training.graphed` "
        "(captured on CUDA; ran = what the loop reported). Loss Δ = max |loss_graph − "
        f"loss_eager| over the first {AGREE_STEPS} steps (tolerance {LOSS_TOL:g}). A graph's "
        "activations sit in its private pool: compare the reserved peaks.",
        "",
        "| mode | step | ran | s/step | peak GiB allocated / reserved | loss Δ vs eager |",
        "|---|---|---|---|---|---|",
    ]
    result, ok = {}, True
    for (mode, step_mode), r in rows.items():
        if "error" in r:
            lines.append(f"| {mode} | {step_mode} | – | – | – | {r['error']} |")
            ok = False
            continue
        diff = agreement(rows[mode, "eager"].get("losses", []), r["losses"])
        ok &= not diff > LOSS_TOL
        peak = (
            f"{r['peak_gib']:.2f} / {r['reserved_gib']:.2f}"
            if r["peak_gib"] == r["peak_gib"]
            else "–"
        )
        lines.append(f"| {mode} | {step_mode} | {r['step_mode']} | {r['s_per_step']:.4f} | "
                     f"{peak} | {diff:.1e} |")  # fmt: skip
        if step_mode.startswith("graph"):
            result[f"s_per_step_{mode}{step_mode[5:]}"] = r["s_per_step"]
    lines += ["", "| floor (spectral_step.py functions) | ms/step |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in floor.items()]

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}×" if a and b else "–"

    svd_inst, inst = result.get("s_per_step_svd-inst"), result.get("s_per_step_inst")
    ti = {k: floor.get(f"ti-graph-{k}") for k in ("tf32", "bf16-amp")}
    spectral = floor.get("spectral-graph-bf16-amp")
    eager_si = rows["svd-inst", "eager"].get("s_per_step")
    ratios = {
        "svd-inst / inst (graph steps; target ≤ 1.3×)": ratio(svd_inst, inst),
        "svd-inst graph / graphed TI TF32 (target ≤ 1.5×)": ratio(
            svd_inst and 1e3 * svd_inst, ti["tf32"]
        ),
        "svd-inst graph / graphed TI bf16-amp": ratio(svd_inst and 1e3 * svd_inst, ti["bf16-amp"]),
        "bf16-autocast spectral / TI, both graphed (target ≤ 1.3×)": ratio(
            spectral, ti["bf16-amp"]
        ),
        "svd-inst eager / graph": ratio(eager_si, svd_inst),
        "channels-last / NCHW graph step, inst": ratio(result.get("s_per_step_inst-nhwc"), inst),
        "channels-last / NCHW graph step, svd-inst": ratio(
            result.get("s_per_step_svd-inst-nhwc"), svd_inst
        ),
        "svd-inst / inst, both channels-last": ratio(
            result.get("s_per_step_svd-inst-nhwc"), result.get("s_per_step_inst-nhwc")
        ),
        f"graph losses within {LOSS_TOL:g} of eager": "yes" if ok else "NO",
    }
    lines += ["", "| ratio | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in ratios.items()]
    card = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    result.update(card=card, date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    return "\n".join(lines), result


def ddp_part(args, model: Path) -> str:
    """svd-inst graph step at global batches ``--ddp-batches``; 1 vs N processes once both ran."""
    from accelerate import PartialState

    state = PartialState()
    res = 64 if args.smoke else args.ddp_resolution
    record = {}
    for batch in args.ddp_batches:
        row = run_mode(args, model, "svd-inst", args.ddp_steps, batch, res,
                       f"ddp{state.num_processes}-b{batch}")  # fmt: skip
        record[str(batch)] = {
            k: row.get(k) for k in ("s_per_step", "reserved_gib", "step_mode", "error")
        }
    if not state.is_main_process:
        return ""
    (args.work / f"train_loop_ddp_{state.num_processes}.json").write_text(json.dumps(record))
    files = {int(p.stem.rsplit("_", 1)[1]): p for p in args.work.glob("train_loop_ddp_*.json")}
    runs = {n: json.loads(p.read_text()) for n, p in sorted(files.items())}
    lines = [f"**Data parallel** ({device_name()}), {datetime.date.today()}: svd-inst, {res} px, "
             f"global batch split over the processes (`accelerate launch`), step_mode auto, "
             f"{args.ddp_steps} steps, median s/step after 3. Speed-up = 1-process ÷ N-process "
             "s/step; img/s = batch ÷ s/step.", "",
             "| global batch | processes | ran | s/step | img/s | speed-up | reserved GiB/GPU |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for batch in args.ddp_batches:
        one = runs.get(1, {}).get(str(batch), {}).get("s_per_step")
        for n, rec in runs.items():
            r = rec.get(str(batch), {})
            t = r.get("s_per_step")
            if not t:
                lines.append(f"| {batch} | {n} | – | – | – | – | {r.get('error', '–')} |")
                continue
            speed = f"{one / t:.2f}×" if one else "–"
            peak = r.get("reserved_gib")
            mem = f"{peak:.2f}" if peak and peak == peak else "–"
            lines.append(f"| {batch} | {n} | {r['step_mode']} | {t:.3f} | {batch / t:.1f} | "
                         f"{speed} | {mem} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny model, few steps (CPU)")
    p.add_argument("--steps", type=int, default=25, help="steps per run (≥ 20 for the loss check)")
    p.add_argument("--ddp", action="store_true", help="data-parallel part (global batches)")
    p.add_argument("--ddp-batches", type=int, nargs="+", default=[8, 32])
    p.add_argument("--ddp-resolution", type=int, default=512)
    p.add_argument("--ddp-steps", type=int, default=12)
    p.add_argument("--work", type=Path,
                   default=Path(os.environ.get("TMPDIR", "/tmp")) / "svdinst-bench")  # fmt: skip
    p.add_argument("--write-report", action="store_true")
    p.add_argument("--report", type=Path, default=REPORT)
    p.add_argument("--results", type=Path, default=Path("benchmarks/results/train_loop.json"))
    args = p.parse_args(argv)
    if args.smoke:
        args.steps, args.ddp_steps = min(args.steps, 6), min(args.ddp_steps, 5)
    # What train_step.run_mode reads: the kit's defaults (precision auto, checkpointing by card).
    args.small, args.precision, args.gradient_checkpointing = args.smoke, "auto", None
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    args.work.mkdir(parents=True, exist_ok=True)
    with state.main_process_first():
        model = build_model(args.smoke)
        style_image(args.work)
    if args.ddp:
        text, result = ddp_part(args, model), None
    else:
        text, result = modes_part(args, model)
    if not state.is_main_process:
        return
    print(text)
    if result and torch.cuda.is_available() and not args.smoke:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(result, indent=1) + "\n")
        print(f"Wrote {args.results}")
    if args.write_report and text:
        block = ("ddp" if args.ddp else "modes") + ("-smoke" if args.smoke else "")
        write_block(args.report, "train_loop", HEADING, text, block)
        print(f"Updated {args.report}")


if __name__ == "__main__":
    sys.exit(main())
