"""Full-size rehearsal: every notebook standalone as on Colab, capped like a T4, with a T4 estimate.

Each notebook runs unedited with papermill, copied alone into an empty folder, in a fresh
environment holding only the svdinst wheel and the preinstalled stack, with ``WORKDIR`` elsewhere
and ``PROFILE`` = the ``course`` preset (:mod:`rehearsal_env`). The models are random weights in the
hub's own layout and precision (``models/stable-diffusion-v1-4``: fp32, ``model_index.json`` as
CompVis'; ``models/clip-vit-large-patch14``: the vision tower), passed as ``SVDINST_MODEL`` /
``SVDINST_IMAGE_ENCODER``; reduced counts go in ``SVDINST_PROFILE_OVERRIDES`` (every
memory-relevant setting stays the preset's). The kernel is capped at ``--cap-gb`` GiB of CUDA memory
and reports peak allocated/reserved GiB and peak RSS; the harness adds wall time and disk.

T4 estimate (:mod:`svdinst.course.budget`): per-unit times measured here (training steps, stylized
images, baseline steps, metrics images, each notebook's fixed rest) replace the budget's, the
card→T4 ratio is the published T4 SD img2img rate ÷ this card's measured img2img rate, and the
preset's counts are extrapolated. No random-weight image says anything about quality.

    python benchmarks/rehearsal.py --small --workdir /tmp/rh     # tiny profile on a CPU, ~2 min
    python benchmarks/rehearsal.py --workdir .rehearsal --notebooks 01 02 03 --write-report

``benchmarks/T4_REHEARSAL.md`` has the device commands (three calls of ≤ 10 min).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import rehearsal_env

from svdinst.course import budget
from svdinst.course.profiles import PROFILES

HEADING = "Full-size rehearsal: every notebook at SD-1.4 size (benchmarks/rehearsal.py)"
NOTEBOOKS = ("01", "02", "03", "04", "05", "06", "07")
MODES = ("inst", "svdiff", "svd-inst")


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


def snapshot(workdir: Path) -> dict[str, int]:
    """Logged training steps per run folder and images per outputs folder (what a notebook did)."""
    done = {}
    for log in workdir.glob("runs/*/log.csv"):
        done[f"train {log.parent.name}"] = len(log.read_text().splitlines()) - 1
    for folder in workdir.glob("outputs/*"):
        done[f"stylize {folder.name}"] = len(list(folder.glob("*/seed-*.png")))
    return done


def measured_units(work: Path, rows: list[dict], args: argparse.Namespace) -> dict:
    """Per-unit costs measured here, as :class:`svdinst.course.budget.UnitCost` (host seconds)."""
    wd, units = work / "workdir", {}
    for mode in MODES:
        s = step_seconds(wd / "runs" / mode / "log.csv")
        if s is not None:
            units[f"train {mode}"] = budget.UnitCost(s, budget.TRAIN_EVALS[mode])
        s = stylize_seconds(wd / "outputs" / mode / "settings.json")
        if s is not None:
            units[f"stylize {mode}"] = budget.UnitCost(s, budget.STYLIZE_EVALS)
    by_nb = {r["notebook"][:2]: r for r in rows if r["ok"]}
    if "06" in by_nb:  # upper bound: the notebook's wall time per step, stylizing included
        per = by_nb["06"]["seconds"] / args.baseline_steps
        units["baseline step (all six)"] = budget.UnitCost(per, card_gpu_s=per)
    if "07" in by_nb and by_nb["07"].get("images"):
        units["metrics image"] = budget.UnitCost(by_nb["07"]["seconds"] / by_nb["07"]["images"])
    for number in ("01", "02", "03", "04", "05"):
        if number in by_nb:  # the rest of the notebook's wall time: loading, SVD, figures
            r = by_nb[number]
            work_s = sum(units[u].host_s * n for u, n in r.get("did", {}).items() if u in units)
            units[f"fixed {number}"] = budget.UnitCost(max(0.0, r["seconds"] - work_s))
    return units


def card_to_t4(units: dict) -> tuple[float, str]:
    """T4 ÷ this card for GPU work, from the same kind of figure on both: img2img s/image."""
    inst = units.get("stylize inst")
    if inst is None:
        return (
            budget.CARD_TO_T4,
            f"× {budget.CARD_TO_T4:.1f} (the budget's: no img2img measured here)",
        )
    t4 = (budget.STYLIZE_EVALS - 4) / budget.T4_UNET_EVALS_PER_S
    ratio = t4 / inst.host_s
    return ratio, (
        f"× {ratio:.1f} = {t4:.2f} s per img2img image on a T4 (published: {budget.T4_SOURCE}; "
        f"40 denoising steps × 2 for CFG) ÷ {inst.host_s:.3f} s measured here (the kit's img2img, "
        "50 DDIM steps at strength 0.8, batch 4, fp16)"
    )


def report(work: Path, rows: list[dict], args: argparse.Namespace) -> str:
    """Markdown: the per-notebook table and the per-unit times behind the T4 estimates."""
    units = measured_units(work, rows, args)
    ratio, ratio_text = card_to_t4(units)
    preset = PROFILES[args.profile]
    here = dataclasses.replace(preset, **counts(args))
    photos = len(list((work / "workdir" / "data" / "test").glob("*")))
    t4_here = budget.t4_estimate(here, units, ratio, photos=photos)
    t4_preset = budget.t4_estimate(preset, units, ratio)
    device = next((r["stats"]["device"] for r in rows if r.get("stats")), "cpu")
    models = rehearsal_env.folder_gib(work / "models")
    out = [
        f"Card: **{device}**; {time.strftime('%Y-%m-%d', time.gmtime())}; profile `{args.profile}` "
        f"on random weights in the hub's layout, fp32 files ({models:.1f} GiB: the first-use "
        f"download's size), **never for quality claims**; counts here: {counts(args)}, "
        f"{photos} test photo(s); each notebook standalone (wheel in a fresh environment, "
        f"notebook alone in an empty folder), kernel capped at {args.cap_gb} GiB; "
        f"`{' '.join(sys.argv)}`.",
        "",
        "| notebook | status | wall s | peak GiB allocated | peak GiB reserved | kernel RSS GiB "
        "(+ children) | disk GiB WORKDIR / caches | T4 min, these counts | "
        f"T4 min, `{args.profile}` counts |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    f2 = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    for r in rows:
        st, n = r.get("stats") or {}, r["notebook"][:2]
        status = "ok" if r["ok"] else f"FAILED: {r['error']}"
        out.append(
            f"| {r['notebook']} | {status} | {r['seconds']:.1f} | {f2(st.get('allocated_gib'))} | "
            f"{f2(st.get('reserved_gib'))} | {f2(st.get('rss_gib'))} "
            f"(+ {f2(st.get('children_rss_gib'))}) | {r.get('disk_workdir', 0):.2f} / "
            f"{r.get('disk_caches', 0):.2f} | {t4_here[n] / 60:.1f} | {t4_preset[n] / 60:.1f} |"
        )
    total = sum(t4_preset.values())
    out += [
        f"| **all seven** (unrun ones: the budget's units) |  |  |  |  |  |  |  | **{total / 60:.0f}** |",
        "",
        "T4 estimate (`svdinst/course/budget.py`): per unit, "
        f"{budget.HOST_FACTOR:g} × the seconds measured here (host work, assumed twice as slow on "
        "Colab's 2 vCPUs; includes this card's GPU time, so conservative) + the unit's UNet "
        f"evaluations at the published T4 rate ({budget.T4_UNET_EVALS_PER_S:.2f}/s at 512 px) + "
        f"other GPU work (baselines) {ratio_text}. Notebook 04 is counted as training all three "
        "modes (it stands alone); budget: ≤ 30 min per notebook, ≤ 3 h in all"
        + (
            f" — **over budget: {budget.over_budget(t4_preset)}**."
            if budget.over_budget(t4_preset)
            else "."
        ),
        "",
        "| unit | measured s/unit | T4 s/unit (estimate) |",
        "|---|---|---|",
    ]
    out += [
        f"| {name} | {u.host_s:.3f} | {u.t4_seconds(ratio):.2f} |"
        for name, u in sorted(units.items())
    ]
    return "\n".join(out)


def counts(args: argparse.Namespace) -> dict:
    """The reduced counts, as Profile fields (``SVDINST_PROFILE_OVERRIDES``)."""
    return {"train_steps": args.train_steps, "stylize_seeds": args.seeds,
            "baseline_steps": args.baseline_steps}  # fmt: skip


def run(args: argparse.Namespace) -> list[dict]:
    repo = Path(__file__).resolve().parent.parent
    work = Path(args.workdir).resolve()
    wd = work / "workdir"
    wd.mkdir(parents=True, exist_ok=True)
    wheel = Path(args.wheel) if args.wheel else None
    if wheel is None:
        built = sorted((work / "wheel").glob("svdinst-*.whl"))
        wheel = built[-1] if built else rehearsal_env.build_wheel(repo, work / "wheel")
    python = rehearsal_env.make_env(work, wheel, args.cap_gb)
    model, vision = rehearsal_env.build_models(work, args.small)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # never the checkout
    env.update(JUPYTER_PATH=str(work / "jupyter"), SVDINST_MODEL=str(model),
               SVDINST_IMAGE_ENCODER=str(vision), SVDINST_HEADLESS="1", HF_HUB_OFFLINE="1",
               SVDINST_PROFILE_OVERRIDES=json.dumps(counts(args)))  # fmt: skip
    caches = [Path(env.get("SVDINST_CACHE", Path.home() / ".cache" / "svdinst")),
              Path.home() / ".cache" / "huggingface", Path.home() / ".cache" / "torch"]  # fmt: skip
    params = ["-p", "PROFILE", args.profile, "-p", "WORKDIR", str(wd),
              "-p", "GPU_STEPS", str(args.baseline_steps), "-p", "TINY_STEPS", str(args.baseline_steps),
              "-p", "TINY_TRAIN_STEPS", str(args.train_steps),
              "-p", "CHECKPOINT_EVERY", str(max(1, args.baseline_steps // 2))]  # fmt: skip
    rows = []
    for number in args.notebooks:
        src = next(iter(sorted((repo / "notebooks").glob(f"{number}_*.ipynb"))), None)
        if src is None:
            raise SystemExit(f"No notebook notebooks/{number}_*.ipynb; choose from {NOTEBOOKS}.")
        folder = work / "nb" / number  # empty: the notebook alone, as a Colab upload
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        if args.solved:  # the exercises solved (tools/solutions.py), as CI runs them
            solutions_tool().solve(src, folder)
        else:
            shutil.copy(src, folder / src.name)
        stats_file = work / "stats" / f"{number}.json"
        stats_file.parent.mkdir(exist_ok=True)
        stats_file.unlink(missing_ok=True)
        env["REHEARSAL_STATS"] = str(stats_file)
        before = snapshot(wd)
        command = [str(python), "-m", "papermill", src.name, "executed.ipynb", "-k",
                   rehearsal_env.KERNEL, "--cwd", str(folder), "--no-progress-bar", *params]  # fmt: skip
        print(f"=== {src.name}", flush=True)
        start = time.perf_counter()
        error = notebook_error(command, folder, env, args.timeout)
        if error is None and args.solved:
            problems = solutions_tool().verify(folder / "executed.ipynb")
            error = "; ".join(problems) or None
        seconds = time.perf_counter() - start
        after = snapshot(wd)
        did = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
        stats = json.loads(stats_file.read_text()) if stats_file.exists() else None
        rows.append(
            {"notebook": src.stem, "ok": error is None, "error": error, "seconds": seconds,
             "stats": stats, "did": did,
             "images": sum(v for k, v in after.items() if k.startswith("stylize ")),
             "disk_workdir": rehearsal_env.folder_gib(wd),
             "disk_caches": rehearsal_env.folder_gib(*caches)}
        )  # fmt: skip
        print(f"    {'ok' if error is None else 'FAILED: ' + error} in {seconds:.1f} s; {stats}")
    return merge_rows(work / "rehearsal.json", rows)


def solutions_tool():
    """tools/solutions.py (a dev tool beside this one), imported from its file."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "tools" / "solutions.py"
    spec = importlib.util.spec_from_file_location("solutions", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def notebook_error(command: list[str], cwd: Path, env: dict, timeout: int) -> str | None:
    """Run papermill in its own process group; the error's last line, or None when it passed.

    On a timeout the whole group (papermill and its kernel) is killed, so no kernel is left
    holding GPU memory for the next notebook.
    """
    with subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as proc:  # fmt: skip
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return f"timed out after {timeout} s (--timeout)"
    if proc.returncode == 0:
        return None
    print(stderr[-4000:])
    tail = [line for line in stderr.strip().splitlines() if line.strip()]
    return (tail[-1] if tail else f"exit {proc.returncode}")[:160].replace("|", "/")


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
    p.add_argument("--small", action="store_true", help="tiny profile and model, notebook 03 (CPU)")
    p.add_argument("--profile", default="course", help="the preset whose counts are estimated")
    p.add_argument("--workdir", default="/tmp/svdinst-rehearsal")
    p.add_argument("--notebooks", nargs="+", default=list(NOTEBOOKS))
    p.add_argument("--train-steps", type=int, default=60, help="per mode (preset: extrapolated)")
    p.add_argument("--seeds", type=int, default=2, help="stylize seeds per test photo")
    p.add_argument("--baseline-steps", type=int, default=30)
    p.add_argument("--cap-gb", type=float, default=14.0, help="GiB: a T4's 14.75 less its context")
    p.add_argument("--wheel", default=None, help="a built svdinst wheel (default: build one)")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per notebook")
    p.add_argument("--write-report", action="store_true")
    p.add_argument("--solved", action="store_true",
                   help="run each notebook with its exercises solved; fail unless every check passed")  # fmt: skip
    p.add_argument("--report", default=None, help="default: reports/benchmarks.md")
    args = p.parse_args(argv)
    if args.small:
        args.profile, args.train_steps, args.seeds, args.baseline_steps = "tiny", 2, 1, 1
        if args.notebooks == list(NOTEBOOKS):
            args.notebooks = ["03"]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if Path(args.workdir).exists() and args.small:
        shutil.rmtree(args.workdir)
    rows = run(args)
    text = report(Path(args.workdir).resolve(), rows, args)
    print(text)
    if args.write_report:
        from report_md import REPORT, write_block

        write_block(Path(args.report or REPORT), "rehearsal", HEADING, text, block=args.profile)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
