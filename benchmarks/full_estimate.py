"""The full reproduction's wall time on one GPU and on two, from the benchmarks' measured units.

Reads the per-unit JSON files the benchmarks write into ``benchmarks/results/`` (their keys:
``benchmarks/results/README.md``) and extrapolates the report's settings — 711 photos × 10 seeds
× 3 diffusion methods, their training, six baselines, every metric — with
:mod:`svdinst.course.reproduction`. A unit with no measured file falls back to the last
full-size rehearsal's number (``reports/benchmarks.md``, ``rehearsal/sd14-random``, H100,
2026-11-26) and its row says so; numbers measured on different cards are flagged.

    python benchmarks/full_estimate.py                  # print the table
    python benchmarks/full_estimate.py --write-report   # … into reports/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from svdinst.course.reproduction import MODES, full_stages, makespan

HEADING = "Full reproduction: extrapolated wall time on 1 and 2 GPUs (benchmarks/full_estimate.py)"
RESULTS = Path(__file__).resolve().parent / "results"
FALLBACK_SOURCE = "fallback: rehearsal 2026-11-26, H100 (old paths)"
# The last full-size rehearsal's per-unit seconds (reports/benchmarks.md, rehearsal/sd14-random).
FALLBACK = {"train inst": 0.206, "train svdiff": 0.370, "train svd-inst": 0.311,
            "stylize": 0.609, "metrics": 0.341, "baselines": 0.834}  # fmt: skip


def _read(name: str) -> dict:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else {}


def measured_units() -> tuple[dict[str, float], dict[str, str], dict]:
    """Per-unit seconds, the source of each (file and card), and the multi-GPU speed-ups."""
    units, sources = dict(FALLBACK), dict.fromkeys(FALLBACK, FALLBACK_SOURCE)

    def take(unit: str, data: dict, key: str, file: str, note: str = "") -> None:
        if key in data:
            units[unit] = float(data[key])
            sources[unit] = f"{file} ({data.get('card', '?')}, {data.get('date', '?')}){note}"

    train = _read("train_loop.json")
    for mode in MODES:
        take(f"train {mode}", train, f"s_per_step_{mode}", "train_loop.json")
    stylize = _read("stylize_speed.json")
    take("stylize", stylize, "s_per_image_best", "stylize_speed.json",
         f", batch {stylize.get('best_batch', '?')}"
         + (f" ({stylize['best_pipeline']})" if "best_pipeline" in stylize else ""))  # fmt: skip
    take("metrics", _read("eval_speed.json"), "s_per_image_stream", "eval_speed.json")
    baselines = _read("baselines.json")
    if baselines.get("profile", "sd14") == "sd14":  # another profile's batches are not the report's
        take("baselines", baselines, "s_per_step_all_six", "baselines.json", ", sd14 batches")
    return units, sources, _read("multi_gpu.json")


def report(gpus: int = 2) -> str:
    units, sources, multi = measured_units()
    stages = full_stages(units)
    speedup = {k: multi[f"speedup_{k}"] for k in ("stylize", "metrics") if f"speedup_{k}" in multi}
    cards = {s.split("(")[1].split(",")[0] for s in sources.values() if "(" in s and ".json" in s}
    one, many = makespan(stages, 1), makespan(stages, gpus, speedup)
    rows = [
        f"| {s.name} | {s.s_per_unit:.4g} | {s.units} | {s.seconds / 3600:.2f} | "
        f"{sources[s.unit]} |"
        for s in stages
    ]
    measured = (
        f"measured on {multi.get('card', '?')} ({multi.get('date', '?')}): stylize "
        f"{speedup.get('stylize', float('nan')):.2f}×, evaluate {speedup.get('metrics', float('nan')):.2f}×"
        if speedup
        else f"not measured: ideal {gpus}× assumed"
    )
    return "\n".join([
        f"{time.strftime('%Y-%m-%d', time.gmtime())}; the report's settings (`sd14` profile); "
        f"per-unit seconds from `benchmarks/results/*.json` (keys: benchmarks/results/README.md)"
        + (f"; **units from different cards: {sorted(cards)}**" if len(cards) > 1 else "") + ".",
        "",
        "| stage | s / unit | units | 1 GPU, h | source |",
        "|---|---|---|---|---|",
        *rows,
        f"| **total, 1 GPU** |  |  | **{one / 3600:.2f}** |  |",
        f"| **total, {gpus} GPUs** |  |  | **{many / 3600:.2f}** | training runs and baselines "
        f"as whole jobs per GPU (longest first); stylize and metrics split, speed-up {measured} |",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gpus", type=int, default=2)
    p.add_argument("--write-report", action="store_true")
    args = p.parse_args(argv)
    text = report(args.gpus)
    print(text)
    if args.write_report:
        from report_md import REPORT, write_block

        write_block(REPORT, "full_estimate", HEADING, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
