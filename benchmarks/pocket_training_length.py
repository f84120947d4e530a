"""Does longer CPU training move the pocket model toward the held-out proxy? (issue 17 diagnostic)

For each training length in ``--steps`` (svd-inst, the pocket profile's lr, training seed 0):

1. **selection harness** (training style images only, as ``svdinst pocket select``): FID of the
   outputs to the training style crops and SSIM to the held-out validation proxy, each against
   the untrained base model's, at each strength;
2. **the pocket experiment** (the held-out TEST photos): FID to the proxy crops and SSIM to the
   oracle, base model vs svd-inst, at each strength.

Part 2 looks at test photos, so it is a diagnostic only: the profile's settings are chosen by
part 1 alone (``svdinst pocket select``), never from this table. Writes
``reports/pocket/training_length.md``. CPU, ~4 min per (steps, strength) on 2 cores:

    python benchmarks/pocket_training_length.py --steps 60 240 --strengths 0.4 0.6
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "pocket" / "training_length.md"


def context(workdir: Path, **profile_fields):
    from svdinst.course.context import CourseContext
    from svdinst.course.profiles import get_profile
    from svdinst.data.default import ensure_dataset
    from svdinst.device import default_device

    workdir.mkdir(parents=True, exist_ok=True)
    ctx = CourseContext(get_profile("pocket", verbose=False, **profile_fields), workdir,
                        default_device())  # fmt: skip
    ensure_dataset(ctx.data_dir)
    return ctx


def main(argv: list[str] | None = None) -> int:
    from svdinst.pocket.experiment import PocketExperimentConfig, run_pocket_experiment
    from svdinst.pocket.select import SelectionConfig, select_settings

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, nargs="+", default=[60, 200, 400])
    p.add_argument("--strengths", type=float, nargs="+", default=[0.6])
    p.add_argument("--work", type=Path, default=Path("/tmp/svdinst-pocket-length"))
    args = p.parse_args(argv)
    start = time.perf_counter()
    select_rows, test_rows = [], []
    for steps in args.steps:
        ctx = context(args.work / f"steps{steps}", train_steps=steps)
        lr, lr_token = ctx.profile.lr_shifts, ctx.profile.lr_token
        cfg = SelectionConfig(lr_tokens=(lr_token,), lr_shifts=(lr,),
                              strengths=tuple(args.strengths))  # fmt: skip
        for r in select_settings(ctx, cfg)["rows"]:
            select_rows.append(f"| {steps} | {r['strength']:g} | {r['fid']:.1f} | "
                               f"{r['base_fid']:.1f} | {100 * r['fid_gain']:+.1f}% | "
                               f"{r['ssim']:.3f} | {r['base_ssim']:.3f} | {r['gain']:+.3f} |")  # fmt: skip
        for strength in args.strengths:
            ctx = context(args.work / f"steps{steps}-s{strength:g}", train_steps=steps,
                          strength=strength)  # fmt: skip
            res = run_pocket_experiment(
                ctx, PocketExperimentConfig(modes=("svd-inst",), seeds=(0,))
            )
            (base,), (ours,) = res["results"]["base"], res["results"]["svd-inst"]
            test_rows.append(
                f"| {steps} | {strength:g} | {base['fid']:.1f} | {ours['fid']:.1f} | "
                f"{base['oracle']['ssim']:.3f} | {ours['oracle']['ssim']:.3f} | {ours['N']} |"
            )
    text = "\n".join([
        "# Pocket model: does longer CPU training move it toward the held-out proxy?",
        "",
        f"`benchmarks/pocket_training_length.py` (CPU, {time.strftime('%Y-%m-%d')}; "
        f"{(time.perf_counter() - start) / 60:.0f} min): svd-inst, lr_shifts {lr:g}, lr_token "
        f"{lr_token or 'InST default'}, training seed 0, the pocket profile otherwise.",
        "",
        "**Selection harness** (training style images only; FID to crops of the training style "
        "images and SSIM to the held-out validation proxy, the base model with the empty "
        "prompt; N = 16 outputs, so FID is biased upwards and only the gain at equal N "
        "means something):",
        "",
        "| steps | strength | FID | base FID | FID gain | SSIM | base SSIM | SSIM gain |",
        "|---|---|---|---|---|---|---|---|",
        *select_rows,
        "",
        "**Test photos** (diagnostic only — never used to choose settings; one training seed, "
        "so read the differences against the report's seed spread of about ±10 FID):",
        "",
        "| steps | strength | FID base | FID svd-inst | SSIM-to-oracle base | svd-inst | N |",
        "|---|---|---|---|---|---|---|",
        *test_rows,
    ])  # fmt: skip
    publish(text, OUT)
    return 0


def publish(text: str, out: Path) -> None:
    """Print a diagnostic's Markdown and write it to ``out`` (``reports/pocket/``)."""
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(f"Wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
