"""``svdinst evaluate``: the command-line face of :func:`svdinst.evaluation.metrics.evaluate`.

Kept apart from the metrics so ``svdinst --help`` does not import torch-fidelity and torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from svdinst.formats.outputs import LAYOUT  # light: no torch


def _evaluate_cmd(args: argparse.Namespace) -> None:
    # torch and torch-fidelity load here, not at import: `svdinst --help` stays fast.
    from svdinst.evaluation.metrics import evaluate, write_metrics

    metrics = evaluate(
        args.generated,
        args.style,
        args.content,
        lpips_backbone=args.lpips_backbone,
        mural_oracle=args.mural_oracle,
        device=args.device,
        verbose=True,
    )
    path = write_metrics(metrics, args.out)
    lp = metrics["lpips_diversity"]
    lp = f"{lp:.3f}" if isinstance(lp, float) else lp
    print(
        f"FID {metrics['fid']:.2f} (N={metrics['N']} vs {metrics['n_reference']} style images), "
        f"KID {metrics['kid']['mean']:.4f} ± {metrics['kid']['std']:.4f}, LPIPS diversity {lp}"
        f" → {path}"
    )


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``svdinst evaluate`` (docs/DESIGN.md, "CLI")."""
    p = subparsers.add_parser(
        "evaluate", help="FID, KID, LPIPS diversity, content LPIPS and ArtFID of a stylized folder"
    )
    p.add_argument("--generated", required=True, type=Path, help=f"{LAYOUT} folder")
    p.add_argument("--style", required=True, type=Path, help="style images (FID reference)")
    p.add_argument("--content", type=Path, help="the content photos (content LPIPS, ArtFID)")
    p.add_argument("--out", required=True, type=Path, help="metrics.json to write")
    p.add_argument("--lpips-backbone", type=Path, help="torchvision AlexNet weights for LPIPS")
    p.add_argument(
        "--mural-oracle",
        action="store_true",
        help="also report the paired distance to mural_proxy(content) (proxy style set only)",
    )
    p.add_argument("--device", choices=["cpu", "cuda"], help="defaults to cuda when available")
    p.set_defaults(func=_evaluate_cmd)
