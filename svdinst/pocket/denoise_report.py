"""The pocket report's view of :mod:`svdinst.pocket.denoise_check`: its table and what it says.

Kept apart from the check itself so the report reads the committed JSON without importing torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DENOISE_CHECK_NAME = "pocket_denoise_check"  # reports/pocket/<name>.json


def denoise_check_markdown(m: Mapping[str, Any]) -> str:
    """One table: a row per group, VAE and each timestep's PSNR / SSIM."""
    keys = ["vae", *(f"t{t}" for t in m["timesteps"])]
    heads = ["VAE round trip", *(f"x̂₀ from t = {t}" for t in m["timesteps"])]
    lines = [
        "| photos | N | " + " | ".join(f"{h}: PSNR / SSIM" for h in heads) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    for group, row in m["groups"].items():
        cells = [f"{row[k]['psnr']:.1f} dB / {row[k]['ssim']:.3f}" for k in keys]
        lines.append(f"| {group} | {row['vae']['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def denoise_check_reading(m: Mapping[str, Any]) -> str:
    """What the table says: the held-out photos' loss in the VAE, and the UNet's on top of it.

    Args:
        m (`Mapping`): from :func:`denoise_check` (the groups of :func:`check_crops`).
    """
    train, held = m["groups"]["pretraining photos"], m["groups"]["held-out test photos"]
    keys = [f"t{t}" for t in m["timesteps"]]

    def losses(row: Mapping[str, Any]) -> list[float]:  # dB lost on top of the VAE round trip
        return [row["vae"]["psnr"] - row[k]["psnr"] for k in keys]

    lt, lh = losses(train), losses(held)
    excess = max(h - t for h, t in zip(lh, lt))
    ts = " / ".join(str(t) for t in m["timesteps"])
    text = (
        f"The held-out photos lose {train['vae']['psnr'] - held['vae']['psnr']:.1f} dB more than "
        f"the pretraining photos already in the VAE round trip. On top of it, the UNet's one-step "
        f"estimate from t = {ts} loses {' / '.join(f'{x:.1f}' for x in lh)} dB on the held-out "
        f"photos and {' / '.join(f'{x:.1f}' for x in lt)} dB on its pretraining photos: "
    )
    if excess <= 0.5:
        return text + (
            "the same within 0.5 dB, so one denoising step shows no memorisation in the UNet; "
            "what held-out photos lose is lost in the VAE (or they are harder photos)."
        )
    return text + (
        f"up to {excess:.1f} dB more on photos it never saw — the UNet denoises its own "
        "photos better than new ones."
    )


def denoise_check_section(here: Path) -> list[str]:
    """The report's lines for ``<here>/pocket/pocket_denoise_check.json``; none without it."""
    path = here / "pocket" / f"{DENOISE_CHECK_NAME}.json"
    if not path.is_file():
        return []
    m = json.loads(path.read_text())
    return [
        "",
        "### Does the UNet denoise photos it never saw?",
        "",
        f"Square crops at {m['resolution']} px, encoded, noised to timestep t with fixed "
        "noise and denoised in one step under the empty prompt (x̂₀ decoded by the VAE), "
        "against the crop (`svdinst pocket denoise-check`):",
        "",
        denoise_check_markdown(m),
        denoise_check_reading(m),
    ]
