"""The content-preservation measure, the pocket profile, and pocket img2img on a CPU."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from svdinst.errors import DataError
from svdinst.pocket_eval import content_preservation, pick_strength


def _pattern(kind: str, size: int = 48) -> Image.Image:
    """Four structurally different grayscale-ish photos (SSIM tells them apart easily)."""
    y, x = np.mgrid[0:size, 0:size] / size
    arr = {
        "checker": ((np.floor(x * 6) + np.floor(y * 6)) % 2),
        "hstripes": (np.sin(y * 30) > 0).astype(float),
        "vstripes": (np.sin(x * 30) > 0).astype(float),
        "disc": (((x - 0.5) ** 2 + (y - 0.5) ** 2) < 0.1).astype(float),
    }[kind]
    rgb = np.stack([arr, 0.5 * arr + 0.25, 1 - arr], axis=-1)
    return Image.fromarray((rgb * 255).astype(np.uint8))


PHOTOS = {k: _pattern(k) for k in ("checker", "hstripes", "vstripes", "disc")}


def _noisy(image: Image.Image, sigma: float, seed: int) -> Image.Image:
    arr = np.asarray(image, dtype=np.float64)
    arr = arr + np.random.default_rng(seed).normal(0, sigma, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def test_identical_outputs_have_distance_zero_and_are_identified() -> None:
    result = content_preservation({k: [v] for k, v in PHOTOS.items()}, PHOTOS)
    assert np.allclose(result.own_similarity, 1.0)  # distance 1 − SSIM = 0
    assert result.identified == 1.0
    s = result.summary()
    assert s["own"] == pytest.approx(1.0) and s["margin_best"] > 0.3
    assert s["chance"] == pytest.approx(0.25) and s["n_outputs"] == 4


def test_shuffled_pairing_is_detected() -> None:
    """Outputs that are the *next* photo (memorised another one) are never identified."""
    stems = list(PHOTOS)
    outputs = {s: [_noisy(PHOTOS[stems[(i + 1) % 4]], 10, i)] for i, s in enumerate(stems)}
    result = content_preservation(outputs, PHOTOS)
    assert result.identified == 0.0
    assert result.summary()["margin_best"] < -0.3
    # and the same noisy outputs, correctly paired, are identified
    paired = {s: [_noisy(PHOTOS[s], 10, i)] for i, s in enumerate(stems)}
    assert content_preservation(paired, PHOTOS).identified == 1.0


def test_rows_follow_seeds_and_groups_exclude_same_photo_crops() -> None:
    # "checker-b" is another crop of the checkerboard: neither own nor a distractor.
    photos = {**PHOTOS, "checker-b": PHOTOS["checker"]}
    groups = {"checker-b": "checker"}
    outputs = {"checker": [PHOTOS["checker"], _noisy(PHOTOS["checker"], 20, 1)]}
    result = content_preservation(outputs, photos, groups=groups)
    assert result.rows == ["checker", "checker"]
    assert result.identified == 1.0  # without groups, the identical crop would tie and fail
    assert content_preservation(outputs, photos).identified == 0.0
    assert result.summary()["chance"] == pytest.approx(0.25)


def test_grayscale_ignores_a_pure_palette_change() -> None:
    """A style that only recolours (same luminance structure) keeps SSIM high."""
    recoloured = {k: [Image.fromarray(np.asarray(v)[..., ::-1].copy())] for k, v in PHOTOS.items()}
    result = content_preservation(recoloured, PHOTOS)
    assert result.identified == 1.0


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="no photo for output"):
        content_preservation({"missing": [PHOTOS["disc"]]}, PHOTOS)
    with pytest.raises(DataError, match="another group"):
        content_preservation({"disc": [PHOTOS["disc"]]}, {"disc": PHOTOS["disc"]})
    mixed = {"disc": [PHOTOS["disc"], PHOTOS["disc"].resize((32, 32))]}
    with pytest.raises(DataError, match="several sizes"):
        content_preservation(mixed, PHOTOS)


def test_pick_strength_takes_the_highest_clearly_identified_strength() -> None:
    stems = list(PHOTOS)
    good = content_preservation({s: [PHOTOS[s]] for s in stems}, PHOTOS)
    bad = content_preservation(
        {s: [PHOTOS[stems[(i + 1) % 4]]] for i, s in enumerate(stems)}, PHOTOS
    )
    assert pick_strength({0.4: good, 0.6: good, 0.8: bad}) == 0.6
    assert pick_strength({0.8: bad}) is None


def test_pocket_profile_is_sized_for_the_pocket_model(capsys) -> None:
    from svdinst.profiles import get_profile
    from svdinst.tiny_model import SDLayoutConfig

    profile = get_profile("pocket")
    cfg = SDLayoutConfig.pocket()
    vae_factor = 2 ** (len(cfg.vae_channels) - 1)
    assert profile.resolution == cfg.unet_sample_size * vae_factor
    assert not profile.quality_claims and len(profile.training_seeds) >= 3
    out = capsys.readouterr().out
    assert "pretrained by the kit" in out and "random" not in out
    assert "random weights" in get_profile("tiny", verbose=False).note


def test_auto_picks_pocket_on_a_cpu_once_its_weights_are_installed(tmp_path, monkeypatch) -> None:
    import svdinst.profiles as profiles

    monkeypatch.setattr(profiles.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(profiles, "pocket_model_path", lambda: tmp_path)
    assert profiles.get_profile("auto", verbose=False).name == "tiny"
    (tmp_path / "model_index.json").write_text("{}")
    assert profiles.get_profile("auto", verbose=False).name == "pocket"
    monkeypatch.setattr(profiles.torch.cuda, "is_available", lambda: True)
    assert profiles.get_profile("auto", verbose=False).name == "sd14"
