"""The content-preservation measure, the pocket profile, and pocket img2img on a CPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from svdinst.errors import DataError
from svdinst.evaluation.content import content_preservation, pick_strength


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


def test_saved_sweep_reads_back_as_the_report_table(tmp_path) -> None:
    from svdinst.evaluation.content import save_sweep
    from svdinst.pocket.report import sweep_markdown

    stems = list(PHOTOS)
    good = content_preservation({s: [PHOTOS[s]] for s in stems}, PHOTOS)
    bad = content_preservation(
        {s: [PHOTOS[stems[(i + 1) % 4]]] for i, s in enumerate(stems)}, PHOTOS
    )
    path = save_sweep({0.8: bad, 0.4: good}, tmp_path / "m" / "sweep.json")
    assert pick_strength(json.loads(path.read_text())) == 0.4  # summaries work as well
    table = sweep_markdown(path)
    rows = table.splitlines()[2:]
    assert rows[0].startswith("| 0.4 | 1.00 | 1.000 |") and rows[1].startswith("| 0.8 | 0.00 |")


def test_pocket_profile_is_sized_for_the_pocket_model(capsys) -> None:
    from svdinst.course.profiles import get_profile
    from svdinst.models.layout_config import POCKET_LAYOUTS, POCKET_VERSION

    profile = get_profile("pocket")
    cfg = POCKET_LAYOUTS[POCKET_VERSION]()
    vae_factor = 2 ** (len(cfg.vae_channels) - 1)
    assert profile.resolution == cfg.unet_sample_size * vae_factor
    assert not profile.quality_claims and len(profile.training_seeds) >= 3
    assert len(get_profile("pocket", verbose=False).training_seeds) >= 3
    out = capsys.readouterr().out
    assert "pretrained by the kit" in out and "random" not in out
    assert "random weights" in get_profile("tiny", verbose=False).note


def test_auto_picks_pocket_on_a_cpu_once_its_weights_are_installed(tmp_path, monkeypatch) -> None:
    import svdinst.course.profiles as profiles

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(profiles, "pocket_model_path", lambda: tmp_path)
    assert profiles.get_profile("auto", verbose=False).name == "tiny"
    (tmp_path / "model_index.json").write_text("{}")
    assert profiles.get_profile("auto", verbose=False).name == "pocket"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert profiles.get_profile("auto", verbose=False).name == "sd14"


# --- the pocket experiment: crops, verdict, end to end ---------------------------------------


def test_photo_crops_are_deterministic_squares_starting_with_the_centre() -> None:
    from svdinst.pocket.experiment import photo_crops

    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8))
    crops, groups = photo_crops({"p": photo}, 3, min_crop=0.5, seed=1)
    assert list(crops) == ["p-c0", "p-c1", "p-c2"] and set(groups.values()) == {"p"}
    assert crops["p-c0"].size == (40, 40)
    assert np.array_equal(np.asarray(crops["p-c0"]), np.asarray(photo)[:, 10:50])
    assert all(c.width == c.height and 20 <= c.width <= 36 for c in list(crops.values())[1:])
    again, _ = photo_crops({"p": photo}, 3, min_crop=0.5, seed=1)
    assert all(np.array_equal(np.asarray(crops[k]), np.asarray(again[k])) for k in crops)


def _fake(fid: float, ssim: float) -> dict:
    return {
        "N": 24,
        "n_reference": 36,
        "fid": fid,
        "kid": {"mean": fid / 1000},
        "oracle": {"psnr": 10 + 10 * ssim, "ssim": ssim},
        "content_preservation": {"identified": 1.0, "own": 0.5, "margin_best": 0.1, "chance": 0.2},
    }


def test_verdict_reads_the_numbers_including_when_svd_inst_loses() -> None:
    from svdinst.pocket.report import pocket_table_markdown, verdict

    results = {
        "base": [_fake(300, 0.1)],
        "inst": [_fake(f, s) for f, s in ((200, 0.30), (202, 0.32), (204, 0.34))],
        "svd-inst": [_fake(f, s) for f, s in ((150, 0.31), (151, 0.33), (152, 0.35))],
    }
    lines = verdict(results)
    line = {ln.split(":")[0].split(" lowers")[0].split(" does")[0]: ln for ln in lines}
    assert "falls at each step" in line["- FID to the proxy style set"]
    assert "by 98.0 (its seed std 2.0): clearly more" in line["- InST"]
    assert "SVD-InST is better by 51" in line["- FID"]
    assert "larger than two spreads" in line["- FID"]
    assert "within two spreads" in line["- SSIM to the oracle"]  # 0.01 apart, seed std 0.02
    table = pocket_table_markdown(results)
    assert "| InST | 3 | 24 | 202.0 ± 2.0 |" in table
    results["svd-inst"] = [_fake(f, 0.2) for f in (250, 251, 252)]
    text = "\n".join(verdict(results))
    assert (
        "does **not** fall" in text and "FID: SVD-InST 251 vs InST 202 — SVD-InST is **not" in text
    )
    assert "SVD-InST does **not** lower FID below the base model's (251.0 vs 300.0)" not in text
    results["svd-inst"] = [_fake(f, 0.2) for f in (350, 351, 352)]
    assert "SVD-InST does **not** lower FID below the base model's (351.0 vs 300.0)" in "\n".join(
        verdict(results)
    )


@pytest.fixture(scope="module")
def default_data(tmp_path_factory: pytest.TempPathFactory):
    from svdinst.data import prepare_default_dataset

    return prepare_default_dataset(tmp_path_factory.mktemp("pocket-data") / "data")


def test_pocket_experiment_end_to_end_on_the_tiny_model(tiny_model_dir, default_data, tmp_path):
    """Plumbing only (random weights): runs per seed, crops, metrics, table, figure, report."""
    import shutil

    from svdinst.course.context import CourseContext
    from svdinst.course.profiles import get_profile
    from svdinst.evaluation.report import write_report
    from svdinst.figures import save_figure
    from svdinst.pocket.experiment import (
        PocketExperimentConfig,
        pocket_figure,
        run_pocket_experiment,
    )
    from svdinst.pocket.report import pocket_section

    profile = get_profile(
        "tiny", verbose=False, train_steps=1, stylize_seeds=1, inference_steps=2,
        training_seeds=(0,), strength=0.5,
    )  # fmt: skip
    ctx = CourseContext(profile, tmp_path, "cpu")
    shutil.copytree(default_data, ctx.data_dir)
    config = PocketExperimentConfig(modes=("inst",), seeds=(0, 1), crops_per_photo=2,
                                    style_crops_per_image=1)  # fmt: skip
    experiment = run_pocket_experiment(ctx, config)
    results = experiment["results"]
    assert list(results) == ["base", "inst"]
    assert [len(r) for r in results.values()] == [1, 2]
    assert {r["N"] for runs in results.values() for r in runs} == {6}  # 3 photos × 2 crops
    assert {r["n_reference"] for runs in results.values() for r in runs} == {8}  # 4 × (1 + 1)
    assert (ctx.runs_dir / "inst-seed1" / "image_to_token.safetensors").is_file()
    assert (ctx.reports_dir / "metrics" / "pocket" / "inst-seed1.json").is_file()
    refs = experiment["references"]  # distinct crops, as many as a method's outputs
    assert [refs[k][0]["N"] for k in ("ref:photos", "ref:oracle")] == [6, 6]
    assert "psnr" in refs["ref:photos"][0]["oracle"]
    assert (ctx.reports_dir / "metrics" / "pocket" / "ref-oracle.json").is_file()
    assert len(list((experiment["root"] / "reference-crops").glob("*.png"))) == 6
    first = results["inst"][0]
    assert 0 <= first["content_preservation"]["identified"] <= 1 and "psnr" in first["oracle"]
    figure = save_figure(pocket_figure(experiment["root"]), "pocket", ctx.figures_dir, close=True)
    report = ctx.reports_dir / "REPORT.md"
    section = pocket_section(experiment, profile=profile, report_path=report, figure=figure)
    text = write_report(report, results, profile=profile, sections=[section]).read_text()
    assert "## Pocket model" in text and "](figures/pocket.png)" in text
    assert "| InST | 2 | 6 |" in text and "3 held-out photos × 2 square crops" in text
    assert "| *reference: oracle outputs mural_proxy(photo)* | — | 6 |" in text
    assert "Reference rows (in italics)" in text


@pytest.fixture(scope="module")
def pocket_stylizer():
    from svdinst.models.loading import pocket_model_path
    from svdinst.stylize.stylizer import Stylizer

    if not (pocket_model_path() / "model_index.json").is_file():
        pytest.skip(f"the pocket weights are not installed in {pocket_model_path()}")
    return Stylizer("pocket")


def test_pocket_img2img_keeps_its_photo_at_the_profile_strength(pocket_stylizer, default_data):
    """The committed pocket model on a CPU: at the profile's strength every output is closest
    to its own test photo among all offline photos; from pure noise (strength 1) it is not."""
    from svdinst.course.profiles import get_profile
    from svdinst.data import list_images, load_image
    from svdinst.stylize.stylizer import StylizeConfig

    profile = get_profile("pocket", verbose=False)
    tests = {p.stem: load_image(p) for p in list_images(default_data / "test")}
    content = {p.stem: load_image(p) for p in list_images(default_data / "content")}
    results = {}
    for strength in (profile.strength, 1.0):
        config = StylizeConfig(strength=strength, seeds=1, steps=profile.inference_steps, guidance=1,
                               prompt="")  # fmt: skip
        outs = {s: pocket_stylizer.stylize(photo, [0], config) for s, photo in tests.items()}
        assert {o.size for v in outs.values() for o in v} == {(profile.resolution,) * 2}
        results[strength] = content_preservation(outs, {**content, **tests})
    kept = results[profile.strength].summary()
    assert kept["identified"] == 1.0 and kept["margin_best"] > 0
    assert results[1.0].identified < 1.0
    assert results[1.0].summary()["own"] < kept["own"]
