"""CPU threads for the pocket model: 1 vs 2, side by side in one run (training and stylizing).

Why: ``course/notebook.py:cpu_threads`` gives the pocket notebooks two threads. Times one svd-inst
run's training (40 steps, batch 2) and its stylizing of the pocket experiment's crops (2 seeds,
the pocket profile's strength 0.4, 20 DDIM steps, guidance 3)
with ``SVDINST_THREADS`` = 1 and 2, each a fresh ``svdinst`` process (start-up included), and
prints the ratios. Needs a WORKDIR after ``make reproduce`` (its ``data/style`` and pocket crops).

    python benchmarks/pocket_threads.py [--workdir .]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path


def timed(args: list[str], threads: int) -> float:
    env = {**os.environ, "SVDINST_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    tic = time.perf_counter()
    subprocess.run(["svdinst", *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - tic


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=Path("."))
    w = p.parse_args().workdir
    rows = {"train 40 steps": {}, "stylize 2 seeds × the pocket crops": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for t in (1, 2):
            run, out = f"{tmp}/run{t}", f"{tmp}/out{t}"
            rows["train 40 steps"][t] = timed(
                ["train", "--model", "pocket", "--style", str(w / "data" / "style"), "--mode",
                 "svd-inst", "--steps", "40", "--batch-size", "2", "--out", run, "--no-progress"],
                t,
            )  # fmt: skip
            rows["stylize 2 seeds × the pocket crops"][t] = timed(
                ["stylize", "--run", run, "--content", str(w / "outputs" / "pocket" / "crops"),
                 "--out", out, "--seeds", "2", "--strength", "0.4", "--steps", "20",
                 "--guidance", "3", "--device", "cpu"],
                t,
            )  # fmt: skip
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    for name, s in rows.items():
        print(f"{name}: 1 thread {s[1]:.1f} s, 2 threads {s[2]:.1f} s → {s[1] / s[2]:.2f}×")


if __name__ == "__main__":
    main()
