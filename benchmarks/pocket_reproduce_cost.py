"""What the pocket experiment costs `make reproduce` on this CPU, v1 against v2, side by side.

Random weights cost what trained ones cost, so a v2-*sized* folder (the smoke output of
``benchmarks/pocket_pretrain.sh --smoke``) times pocket-v2 before its GPU weights exist. For
each model: one short training run per mode at the profile's resolution and batch (seconds per
step from its loss log, and the fixed cost of starting a run), one stylization of the
experiment's test set (3 photos × crops × stylize seeds) and one evaluation (FID/KID with the
real Inception, oracle). The estimate multiplies by the experiment's counts (modes × training
seeds runs of ``train_steps`` steps, one folder per run plus the base model).

    python benchmarks/pocket_reproduce_cost.py --v2 build/pocket-v2 [--v1 pocket] [--steps 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from svdinst.course.profiles import POCKET_PROFILES
from svdinst.data.default import ensure_dataset
from svdinst.pocket.experiment import PocketExperimentConfig, prepare_sets
from svdinst.training.runs import read_loss_log

MODES = ("inst", "svdiff", "svd-inst")


def _cli(*args: str) -> float:
    """Run ``svdinst ARGS`` in a fresh process; its wall time in seconds."""
    tic = time.perf_counter()
    subprocess.run([sys.executable, "-m", "svdinst.cli", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - tic


def measure(model: str, version: str, steps: int, work: Path, data: Path) -> dict:
    profile = POCKET_PROFILES[version]
    exp = PocketExperimentConfig()
    sets = prepare_sets(data, work / "sets", exp)
    out: dict = {"version": version, "model": model, "resolution": profile.resolution}
    for mode in MODES:
        run = work / version / mode
        wall = _cli("train", "--model", model, "--style", str(data / "style"), "--mode", mode,
                    "--steps", str(steps), "--resolution", str(profile.resolution),
                    "--batch-size", str(profile.train_batch_size),
                    "--lr-shifts", str(profile.lr_shifts), "--out", str(run), "--overwrite",
                    "--no-progress")  # fmt: skip
        seconds = read_loss_log(run)["seconds"]
        per_step = (seconds[-1] - seconds[1]) / (len(seconds) - 2)  # step 1 warms up
        out[mode] = {"s_per_step": per_step, "start_s": wall - seconds[-1]}
    styl = work / version / "outputs"
    out["stylize_s"] = _cli("stylize", "--model", model, "--run", str(work / version / "svd-inst"),
                            "--content", str(sets["crops"]), "--out", str(styl),
                            "--strength", str(profile.strength), "--init", profile.init,
                            "--seeds",
                            str(profile.stylize_seeds), "--steps", str(profile.inference_steps),
                            "--guidance", str(profile.guidance))  # fmt: skip
    out["evaluate_s"] = _cli("evaluate", "--generated", str(styl), "--style",
                             str(sets["style_ref"]), "--content", str(sets["crops"]),
                             "--mural-oracle", "--out", str(work / version / "m.json"))  # fmt: skip
    runs = len(MODES) * len(profile.training_seeds)
    train = sum(
        out[m]["start_s"] + profile.train_steps * out[m]["s_per_step"] for m in MODES
    ) * len(profile.training_seeds)
    out["estimate"] = {
        "runs": runs,
        "train_steps": profile.train_steps,
        "train_s": train,
        "stylize_s": (runs + 1) * out["stylize_s"],
        "evaluate_s": (runs + 1) * out["evaluate_s"],
    }
    out["estimate"]["total_s"] = sum(v for k, v in out["estimate"].items() if k.endswith("_s"))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--v2", required=True, help="a v2-sized pocket folder (smoke or trained)")
    p.add_argument("--v1", required=True,
                   help="a pocket-v1 folder: `svdinst pocket pretrain --preset pocket-v1`, or "
                   "`git archive e6ddc34 svdinst/weights/pocket-v1` (no longer shipped)")  # fmt: skip
    p.add_argument("--steps", type=int, default=8, help="steps per timing run")
    p.add_argument("--out", type=Path, default=None, help="write the JSON here too")
    args = p.parse_args()
    v1 = args.v1
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = ensure_dataset(Path(tmp) / "data")
        for model, version in ((v1, "pocket-v1"), (args.v2, "pocket-v2")):
            results.append(measure(model, version, args.steps, Path(tmp), data))
            print(json.dumps(results[-1], indent=1), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    a, b = (r["estimate"] for r in results)
    print(f"pocket experiment on this CPU: v1 {a['total_s'] / 60:.1f} min "
          f"({a['runs']} runs), v2 {b['total_s'] / 60:.1f} min ({b['runs']} runs); "
          f"v2 − v1 = {(b['total_s'] - a['total_s']) / 60:+.1f} min")  # fmt: skip


if __name__ == "__main__":
    main()
