"""`svdinst pocket denoise-check`: the one-step estimate's formula, the groups, the report text."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from svdinst.pocket.data import POCKET_PHOTOS
from svdinst.pocket.denoise_check import check_crops, denoise_check, one_step_estimates
from svdinst.pocket.denoise_report import (
    DENOISE_CHECK_NAME,
    denoise_check_markdown,
    denoise_check_reading,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
PARTS = ("vae", "unet", "text_encoder", "tokenizer", "scheduler")


@pytest.fixture(scope="module")
def comps(tiny_model_dir):
    from svdinst.models.loading import load_components

    return load_components(tiny_model_dir, PARTS)


class _PerfectDenoiser(torch.nn.Module):
    """Returns the exact noise of z_t given the clean latent the VAE produced last."""

    def __init__(self, comps):
        super().__init__()
        self.alphas, self.clean, self.seen = comps.scheduler.alphas_cumprod, None, []
        self.encode = comps.vae.encode

        def encode(x):  # remember the clean latent (scaled, as the check scales it)
            out = self.encode(x)
            self.clean = out.latent_dist.mean * comps.vae.config.scaling_factor
            return out

        comps.vae.encode = encode

    def forward(self, z_t, t, encoder_hidden_states):
        a = self.alphas[t]
        self.seen.append((t, z_t.clone(), self.clean.clone()))
        eps = (z_t - a.sqrt() * self.clean) / (1 - a).sqrt()
        return type("Out", (), {"sample": eps})()

    def parameters(self, recurse=True):
        yield torch.zeros(1)


def test_a_perfect_denoiser_gives_back_the_vae_round_trip(comps, monkeypatch):
    """x̂₀ inverts the forward process exactly: with the true noise it is the clean latent, and
    z_t is √ᾱ·z + √(1−ᾱ)·ε with image k's noise drawn from seed k, one draw per timestep."""
    from dataclasses import replace

    res = int(comps.vae.config.sample_size)
    crops = check_crops(res, per_photo=1)["held-out test photos"]
    stub = _PerfectDenoiser(comps)
    try:
        est = one_step_estimates(replace(comps, unet=stub), crops, (100, 400))
    finally:
        comps.vae.encode = stub.encode
    for name in crops:
        for key in ("t100", "t400"):
            diff = np.abs(np.asarray(est[key][name], int) - np.asarray(est["vae"][name], int))
            assert diff.max() <= 1, (name, key)  # one grey level: float rounding at the decoder
    alphas = comps.scheduler.alphas_cumprod
    g = torch.Generator().manual_seed(0)  # image 0
    for t, z_t, z in stub.seen[:2]:
        noise = torch.randn(z.shape, generator=g)
        a = alphas[t]
        torch.testing.assert_close(z_t, a.sqrt() * z + (1 - a).sqrt() * noise)


def test_denoise_check_scores_both_groups_and_reads_them(comps):
    res = int(comps.vae.config.sample_size)
    m = denoise_check(comps, res, timesteps=(200,), per_photo=1)
    groups = m["groups"]
    assert list(groups) == ["pretraining photos", "held-out test photos"]
    assert groups["pretraining photos"]["vae"]["n"] == len(POCKET_PHOTOS)
    assert groups["held-out test photos"]["t200"]["n"] == 3
    assert all(0 < row[k]["ssim"] < 1 for row in groups.values() for k in ("vae", "t200"))
    table = denoise_check_markdown(m)
    assert table.count("\n") == 4 and "x̂₀ from t = 200" in table
    json.dumps(m)  # written as JSON


def _row(vae_psnr, t_psnr):
    return {
        "vae": {"psnr": vae_psnr, "ssim": 0.5, "n": 4},
        "t200": {"psnr": t_psnr, "ssim": 0.4, "n": 4},
    }


def _check(train_vae, train_t, held_vae, held_t):
    groups = {"pretraining photos": _row(train_vae, train_t),
              "held-out test photos": _row(held_vae, held_t)}  # fmt: skip
    return {"timesteps": [200], "resolution": 128, "groups": groups}


def test_the_reading_tells_a_vae_gap_from_a_unet_gap():
    same = denoise_check_reading(_check(28.0, 24.0, 22.0, 18.2))
    assert "lose 6.0 dB more" in same and "no memorisation in the UNet" in same
    gap = denoise_check_reading(_check(28.0, 24.0, 27.0, 20.0))
    assert "up to 3.0 dB more on photos it never saw" in gap


def test_report_section_shows_the_check(tmp_path):
    from svdinst.pocket.report import _vae_and_selection

    (tmp_path / "pocket").mkdir()
    path = tmp_path / "pocket" / f"{DENOISE_CHECK_NAME}.json"
    path.write_text(json.dumps(_check(28.0, 24.0, 22.0, 18.2)))
    text = "\n".join(_vae_and_selection(tmp_path))
    assert "### Does the UNet denoise photos it never saw?" in text
    assert "| held-out test photos | 4 | 22.0 dB / 0.500 | 18.2 dB / 0.400 |" in text
