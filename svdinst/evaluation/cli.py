"""``svdinst evaluate``: the command-line face of :func:`svdinst.evaluation.metrics.evaluate`.

Kept apart from the metrics so ``svdinst --help`` does not import torch-fidelity and torch.
``accelerate launch --num_processes N -m svdinst.cli evaluate …`` splits the photos over N
processes; rank 0 writes ``--out``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from svdinst.errors import SvdinstError
from svdinst.formats.atomic import write_json_atomic
from svdinst.formats.folders import check_writable  # light: no torch
from svdinst.formats.outputs import LAYOUT


def save_metrics_safely(metrics: Mapping[str, Any], out: Path, generated: Path) -> Path:
    """Write ``metrics`` to ``out``; when that fails, to a timestamped file that can be written
    (beside ``out``, in the generated folder, or the temporary folder) and raise one line
    naming both, so the minutes of computed metrics are never lost.
    """
    try:
        return write_json_atomic(out, dict(metrics))
    except OSError as err:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = f"{out.stem or 'metrics'}-{stamp}.json"
        for folder in (out.parent, generated, Path(tempfile.gettempdir())):
            try:
                saved = write_json_atomic(folder / name, dict(metrics))
            except OSError:
                continue
            raise SvdinstError(
                f"could not write --out '{out}' ({err.strerror}); the metrics are saved in "
                f"'{saved}' instead."
            ) from err
        raise


def _evaluate_cmd(args: argparse.Namespace) -> None:
    check_writable(
        args.out, what="the metrics", folder=False
    )  # before minutes of metrics, not after
    # torch and torch-fidelity load here, not at import: `svdinst --help` stays fast.
    from svdinst.evaluation.metrics import evaluate

    metrics = evaluate(
        args.generated,
        args.style,
        args.content,
        lpips_backbone=args.lpips_backbone,
        mural_oracle=args.mural_oracle,
        device=args.device,
        batch_size=args.batch_size,
        num_workers=args.workers,
        verbose=True,
    )
    if metrics is None:  # another process of `accelerate launch`: rank 0 gathered and writes
        return
    path = save_metrics_safely(metrics, args.out, args.generated)
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
    p.add_argument("--batch-size", type=int, default=64, help="output images per device step")
    p.add_argument(
        "--workers", type=int, help="image-decoding processes (default: 0 on a CPU, ≤ 16 on a GPU)"
    )
    p.set_defaults(func=_evaluate_cmd)
