"""Where a training step's GPU time goes: kernel time per step by kind, side by side per mode.

``train_loop.py`` times whole steps; this script asks *why* one step costs more than another.
On the ``sd14-random`` model (SD-1.4 shapes, random weights), 512 px, batch 1, in one process:

* ``ti-bf16-amp``: ``spectral_step.py``'s textual-inversion step under bf16 autocast, eager
  (the floor ``train_loop.py`` captures in a graph);
* ``inst`` / ``svdiff`` / ``svd-inst`` through the kit's real loop
  (:func:`svdinst.training.loop.train`, ``step_mode="eager"``, the kit's default precision),

each profiled over ``ACTIVE`` steps with ``torch.profiler`` after ``SKIP`` steps. It prints
the sum of device kernel time per step (the work a CUDA graph replays: if it is close to the
graphed step's wall time the step is bound by its kernels, not by launches), split into kinds
(GEMM, convolution forward / data-gradient / weight-gradient, attention, normalisation,
elementwise, reductions, optimizer, copies/casts), and the heaviest kernels per run. Then, for
``inst`` and ``svd-inst`` with the graph step the loop really runs, the split of a step's wall
time into the graph replay (synchronised before and after) and everything else (drawing the
batch, the eager AdamW + GradScaler, reading the loss, logging).

    python benchmarks/train_profile.py --write-report     # CUDA, ~2 min
    python benchmarks/train_profile.py --smoke            # CPU, tiny model (operators, not kernels)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import sys
from collections import defaultdict
from pathlib import Path

import torch
from report_md import REPORT, write_block
from train_step import build_model, device_name, loop_config

HEADING = "Training step: where the kernel time goes (benchmarks/train_profile.py)"
SKIP, WARM, ACTIVE = 5, 2, 3  # profiler schedule: steps skipped, warm-up, recorded
TOP = 8  # heaviest kernels listed per run
SPLIT_TIMED = 20  # graph split: steps timed with a sync around the replay
HOST_STEPS = 5  # then steps profiled as the loop runs them (no syncs)
HOST_TOP = 12  # host operators listed per mode
CENSUS_TOP = 15  # kernel names listed by their extra launches per step (svd-inst over inst)
BACK_TO_BACK = 10  # graph replays chained without a sync (does submitting pace the device?)
# Kernel kinds by name fragment, first match wins (cuDNN/cuBLAS/CUTLASS/PyTorch naming).
KINDS = (
    ("conv wgrad", ("wgrad",)),
    ("conv dgrad", ("dgrad",)),
    ("conv", ("conv", "fprop", "implicit")),
    ("attention", ("flash", "fmha", "attention", "_efficient")),
    ("gemm", ("gemm", "nvjet", "cutlass", "xmma", "cublas", "matmul", "::mm", "addmm", "bmm")),
    ("optimizer", ("multi_tensor", "adam", "foreach")),
    ("norm", ("norm",)),
    ("copy/cast", ("copy", "cast", "to_copy", "memcpy", "memset", "fill")),
    ("reduce", ("reduce", "sum", "mean")),
    ("elementwise", ("elementwise", "vectorized", "unrolled", "pointwise", "mul", "add")),
)


def kind_of(name: str) -> str:
    low = name.lower()
    for kind, keys in KINDS:
        if any(k in low for k in keys):
            return kind
    return "other"


def summarize(prof, device_type, steps: int) -> dict:
    """Kernel (or, on a CPU, operator) time per step in ms: total, by kind, top kernels."""
    from torch.autograd import DeviceType

    on_device = device_type == "cuda"
    total, kinds, names = 0.0, defaultdict(float), defaultdict(float)
    for evt in prof.key_averages():
        if on_device:
            # User annotations (ProfilerStep#k, Optimizer.step#AdamW.step) are mirrored on the
            # device as spans that *contain* kernels: counting them would count time twice.
            annotation = evt.key.startswith("ProfilerStep") or "#" in evt.key
            if evt.device_type != DeviceType.CUDA or annotation:
                continue
            us = evt.self_device_time_total
        else:
            if evt.device_type != DeviceType.CPU or evt.key.startswith("ProfilerStep"):
                continue
            us = evt.self_cpu_time_total
        ms = us / 1e3 / steps
        total += ms
        kinds[kind_of(evt.key)] += ms
        names[evt.key] += ms
    top = sorted(names.items(), key=lambda kv: -kv[1])[:TOP]
    return {"total_ms": total, "kinds": dict(kinds), "top": top}


def profiled(run_steps, device: str) -> dict:
    """Profile ``run_steps(tick)``, which calls ``tick()`` once after every step."""
    from torch.profiler import ProfilerActivity, profile, schedule

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=acts, schedule=schedule(wait=SKIP, warmup=WARM, active=ACTIVE)) as p:
        run_steps(p.step)
    return summarize(p, device, ACTIVE)


def ti_steps(smoke: bool, device: str):
    """spectral_step.py's TI step (bf16 autocast on CUDA), eager."""
    from spectral_step import batch, build, make_step

    unet, encoder = build(smoke, device)
    inputs = batch(1, 8 if smoke else 64, encoder.config.vocab_size, device)
    emb = encoder.get_input_embeddings().weight.requires_grad_(True)
    step, _ = make_step(unet, encoder, [emb], inputs, device == "cuda", device)

    def run(tick):
        for _ in range(SKIP + WARM + ACTIVE + 1):
            step()
            tick()

    return run


def loop_steps(args, model: Path, mode: str):
    """The kit's loop in ``mode``, eager steps, the kit's default precision."""
    from svdinst.training.loop import train

    def run(tick):
        steps = SKIP + WARM + ACTIVE + 1  # one checkpoint, after the profiled steps
        res = 64 if args.smoke else 512
        config = loop_config(args, model, mode, steps, res, f"profile-{mode}", step_mode="eager",
                             channels_last=args.channels_last)  # fmt: skip
        train(config, overwrite=True, callback=lambda step, loss: tick())

    return run


@contextlib.contextmanager
def variant(name: str):
    """A way of computing the step that was replaced, restored for a side-by-side split row:
    ``--split svd-inst:product-sum`` — the factored backward's Σₙ (g·U)∘h as an elementwise
    product and a sum (before 2026-12-07) instead of a GEMM's diagonal; ``svd-inst:inline`` —
    the δ gradients on the main stream, in line with the rest of the backward (before
    2026-12-08), instead of a side stream (``svdinst.spectral.aside``)."""
    from svdinst.spectral import aside, factored

    if name not in ("", "product-sum", "inline"):
        raise SystemExit(f"unknown split variant {name!r} (known: product-sum, inline)")
    kept = factored.column_dots, aside.side_stream
    if name == "product-sum":
        factored.column_dots = lambda a, b, dtype: (a * b).sum(0, dtype=dtype)
    if name == "inline":
        aside.side_stream = lambda device: None
    try:
        yield
    finally:
        factored.column_dots, aside.side_stream = kept


def graph_split(args, model: Path, spec: str, steps: int = SPLIT_TIMED + WARM + HOST_STEPS) -> dict:
    """Median ms of a graph-mode step of the loop and of its replay alone (synchronised), then
    a host-side profile of ``HOST_STEPS`` further steps run as the loop runs them (no syncs).
    ``spec`` is a mode, or ``mode:variant`` (:func:`variant`)."""
    import statistics
    import time

    from torch.profiler import ProfilerActivity, profile, schedule

    from svdinst.training import graphed
    from svdinst.training.loop import train

    cuda = torch.cuda.is_available() and not args.smoke
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    replay, wall, last, chained = [], [], [None], []
    original = graphed.StaticStep.__call__

    def timed(self, *batch):
        if len(replay) >= SPLIT_TIMED:  # the profiled steps overlap as in a real run
            return original(self, *batch)
        sync()
        t0 = time.perf_counter()
        out = original(self, *batch)
        sync()
        replay.append(time.perf_counter() - t0)
        if len(replay) == SPLIT_TIMED and self.graph is not None:
            # The same graph replayed BACK_TO_BACK times with no sync between: while the device
            # runs one replay the host submits the next, so if submitting paces the device this
            # is faster per replay than a synchronised one. Same inputs, so the gradients the
            # optimizer then reads are this step's.
            t0 = time.perf_counter()
            for _ in range(BACK_TO_BACK):
                self.graph.replay()
            sync()
            chained.append((time.perf_counter() - t0) / BACK_TO_BACK)
        return out

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    prof = profile(
        activities=acts, schedule=schedule(wait=SPLIT_TIMED, warmup=WARM, active=HOST_STEPS)
    )

    def tick(step: int, loss: float) -> None:
        if step <= SPLIT_TIMED:
            sync()
            now = time.perf_counter()
            if last[0] is not None:
                wall.append(now - last[0])
            last[0] = now
        prof.step()

    res = 64 if args.smoke else 512
    mode, _, how = spec.partition(":")
    config = loop_config(args, model, mode, steps, res, f"split-{mode}{how and '-' + how}", step_mode="graph",
                         channels_last=args.channels_last)  # fmt: skip
    graphed.StaticStep.__call__ = timed
    try:
        with prof, variant(how):
            train(config, overwrite=True, callback=tick)
    finally:
        graphed.StaticStep.__call__ = original
    step_ms = 1e3 * statistics.median(wall[SKIP:])
    replay_ms = 1e3 * statistics.median(replay[SKIP + 1 :])  # the first call captures
    return {"step_ms": step_ms, "replay_ms": replay_ms, "rest_ms": step_ms - replay_ms,
            "chained_ms": 1e3 * chained[0] if chained else float("nan"),
            "host": host_summary(prof, cuda)}  # fmt: skip


def host_summary(prof, cuda: bool) -> dict:
    """Per step: host (CPU) self time of the heaviest operators, and the device kernel total."""
    from torch.autograd import DeviceType

    cpu, kernels, launches = defaultdict(float), 0.0, 0
    census: dict[str, float] = defaultdict(float)  # kernels per step by name
    for evt in prof.key_averages():
        if evt.key.startswith("ProfilerStep"):
            continue
        if evt.device_type == DeviceType.CPU:
            cpu[evt.key] += evt.self_cpu_time_total / 1e3 / HOST_STEPS
        elif cuda and evt.device_type == DeviceType.CUDA and "#" not in evt.key:
            kernels += evt.self_device_time_total / 1e3 / HOST_STEPS
            launches += evt.count
            census[evt.key] += evt.count / HOST_STEPS
    top = sorted(cpu.items(), key=lambda kv: -kv[1])[:HOST_TOP]
    return {"cpu_ms": sum(cpu.values()), "kernel_ms": kernels, "top": top,
            "kernels_per_step": launches / HOST_STEPS, "census": dict(census),
            "gaps": idle_gaps(prof) if cuda else {}}  # fmt: skip


GAP_BUCKETS_US = (2, 5, 10, 50)  # idle gaps between consecutive kernels, histogram edges
LONG_GAP_US = 1000  # longer: the device waits for the host (between steps), not inside one


def idle_gaps(prof) -> dict:
    """Where the device idles *between* kernels within a step (a replay runs its kernels back to
    back, so a gap is per-kernel cost the kernels' own time does not show): per step, the idle
    time in gaps shorter than :data:`LONG_GAP_US`, a histogram of their lengths, and the idle
    time summed by the kernel that follows the gap (the one the device was waiting to start)."""
    from torch.autograd import DeviceType

    spans = sorted(
        (e.time_range.start, e.time_range.end, e.name)
        for e in prof.events()
        if e.device_type == DeviceType.CUDA and "#" not in e.name
        and not e.name.startswith("ProfilerStep")
    )  # fmt: skip
    total, hist, before = 0.0, defaultdict(int), defaultdict(float)
    busy_until = spans[0][1] if spans else 0.0
    for start, end, name in spans[1:]:
        gap, busy_until = start - busy_until, max(busy_until, end)  # overlaps (streams): no gap
        if gap <= 0 or gap >= LONG_GAP_US:
            continue
        total += gap
        hist[
            next((f"< {b} µs" for b in GAP_BUCKETS_US if gap < b), f"≥ {GAP_BUCKETS_US[-1]} µs")
        ] += 1
        before[name] += gap
    top = sorted(before.items(), key=lambda kv: -kv[1])[:CENSUS_TOP]
    return {"idle_ms": total / 1e3 / HOST_STEPS,
            "hist": {k: v / HOST_STEPS for k, v in hist.items()},
            "before": [(k, v / 1e3 / HOST_STEPS) for k, v in top]}  # fmt: skip


def gap_text(splits: dict) -> str:
    """The idle-gap lines of each split mode (CUDA only)."""
    lines = []
    for mode, r in splits.items():
        g = r["host"].get("gaps")
        if not g:
            continue
        hist = ", ".join(f"{k}: {v:.0f}" for k, v in g["hist"].items())
        waits = "; ".join(f"`{k[:60]}` {v:.2f}" for k, v in g["before"])
        lines.append(f"- {mode}: idle {g['idle_ms']:.1f} ms per step between kernels (gaps "
                     f"{hist}); idle before: {waits}")  # fmt: skip
    if not lines:
        return ""
    return "\n\nIdle time between consecutive kernels, per step (gaps < 1 ms):\n\n" + "\n".join(
        lines
    )


def census_diff(splits: dict, base: str = "inst", other: str = "svd-inst") -> str:
    """The kernels (by name) that ``other``'s graph step runs more often than ``base``'s, and
    those it runs less often: a change that removes launches of one kind may add others (the
    σ' fold of 2026-12-08 counted 400 fewer products on paper and 30 fewer kernels here)."""
    if base not in splits or other not in splits:
        return ""
    a, b = splits[base]["host"]["census"], splits[other]["host"]["census"]
    diff = sorted(((b.get(k, 0) - a.get(k, 0), k) for k in set(a) | set(b)), reverse=True)

    def listed(pairs) -> str:
        return "; ".join(f"`{k[:90]}` {n:+.0f}" for n, k in pairs[:CENSUS_TOP]) or "none"

    more = [(n, k) for n, k in diff if n >= 1]
    fewer = [(n, k) for n, k in reversed(diff) if n <= -1]
    net = sum(b.values()) - sum(a.values())
    return (
        f"\n\nKernels per step, {other} against {base} (net {net:+.0f}): more often: "
        f"{listed(more)}. Less often: {listed(fewer)}"
    )


def split_table(splits: dict) -> str:
    lines = [
        "Graph-mode steps of the loop, split (median ms; a synchronisation before and after the "
        "replay, so nothing overlaps it here and the step is a little slower than in "
        "train_loop.py):",
        "",
        "| mode | step | replay (forward, spectral refresh, backward) | rest (batch, AdamW + "
        f"GradScaler, loss read, log) | replay, {BACK_TO_BACK} chained without a sync, each |",
        "|---|---|---|---|---|",
    ]
    for mode, r in splits.items():
        lines.append(f"| {mode} | {r['step_ms']:.1f} | {r['replay_ms']:.1f} | {r['rest_ms']:.1f} | "
                     f"{r['chained_ms']:.1f} |")  # fmt: skip
    lines += ["", f"Then {HOST_STEPS} graph steps as the loop runs them (no added syncs), profiled: "
              "host self time per step (a `cudaStreamSynchronize` / `_local_scalar_dense` row is "
              "the host waiting for the GPU) and the device's kernel time per step.", ""]  # fmt: skip
    for mode, r in splits.items():
        h = r["host"]
        top = "; ".join(f"`{k[:60]}` {v:.2f}" for k, v in h["top"])
        lines.append(f"- {mode}: host {h['cpu_ms']:.1f} ms, kernels {h['kernel_ms']:.1f} ms "
                     f"({h['kernels_per_step']:.0f} per step); {top}")  # fmt: skip
    return "\n".join(lines)


def table(results: dict, device: str, smoke: bool) -> str:
    unit = "kernel" if device == "cuda" else "CPU operator"
    kinds = [k for k, _ in KINDS] + ["other"]
    names = list(results)
    lines = [
        f"**{device_name()}**, {datetime.date.today()}; SD-1.4 shapes"
        + (" (--smoke: tiny model)" if smoke else "")
        + f", batch 1, eager steps; {unit} time per step (ms), mean of {ACTIVE} profiled steps "
        f"after {SKIP + WARM}. `ti-bf16-amp` is spectral_step.py's TI step; the others run "
        "`svdinst.training.loop.train` at the kit's default precision (fp16 frozen weights on "
        "CUDA). A CUDA graph replays exactly these kernels, so the total is the floor of a "
        "graphed step.",
        "",
        "| kind | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for kind in kinds:
        vals = [results[n]["kinds"].get(kind, 0.0) for n in names]
        if max(vals) >= 0.05:
            lines.append(f"| {kind} | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
    lines.append("| **total** | " + " | ".join(f"**{results[n]['total_ms']:.1f}**" for n in names)
                 + " |")  # fmt: skip
    lines += ["", f"Heaviest {unit}s per run (ms per step):", ""]
    for n in names:
        top = "; ".join(f"`{k[:70]}` {v:.2f}" for k, v in results[n]["top"])
        lines.append(f"- {n}: {top}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny model on the CPU")
    p.add_argument("--modes", nargs="*", default=["ti-bf16-amp", "inst", "svdiff", "svd-inst"])
    p.add_argument("--work", type=Path,
                   default=Path(os.environ.get("TMPDIR", "/tmp")) / "svdinst-bench")  # fmt: skip
    p.add_argument("--split", nargs="*", default=["inst", "svd-inst"], help="graph-step split")
    p.add_argument("--channels-last", action="store_true", help="TrainConfig.channels_last")
    p.add_argument("--write-report", action="store_true")
    p.add_argument("--report", type=Path, default=REPORT)
    args = p.parse_args(argv)
    # What train_step.loop_config reads: the kit's defaults (precision auto, checkpointing by card).
    args.small, args.precision, args.gradient_checkpointing = args.smoke, "auto", None
    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    args.work.mkdir(parents=True, exist_ok=True)
    model = build_model(args.smoke)
    results = {}
    for name in args.modes:
        run = (
            ti_steps(args.smoke, device) if name.startswith("ti") else loop_steps(args, model, name)
        )
        results[name] = profiled(run, device)
        print(name, f"{results[name]['total_ms']:.1f} ms/step", flush=True)
        if device == "cuda":
            torch.cuda.empty_cache()
    blocks = {}
    if results:
        blocks["main"] = table(results, device, args.smoke)
    if args.split:
        splits = {mode: graph_split(args, model, mode) for mode in args.split}
        blocks["split"] = (f"**{device_name()}**, {datetime.date.today()}. "
                           + split_table(splits) + census_diff(splits) + gap_text(splits)
                           + "".join(census_diff(splits, "svd-inst", spec) for spec in splits
                                     if spec.startswith("svd-inst:")))  # fmt: skip
    for block, text in blocks.items():
        if args.channels_last:
            text = "**The loop's UNet in channels-last (`TrainConfig.channels_last`).** " + text
        print(text)
        if args.write_report:
            name = (
                block + ("-nhwc" if args.channels_last else "") + ("-smoke" if args.smoke else "")
            )
            write_block(args.report, "train_profile", HEADING, text, name)
            print(f"Updated {args.report} ({name})")


if __name__ == "__main__":
    sys.exit(main())
