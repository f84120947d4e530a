"""Metrics: the converted TF-FID Inception, FID/KID behaviour, LPIPS, ArtFID, the oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from svdinst.errors import DataError, ModelNotFoundError


def _images(n: int, seed: int, shift: int = 0, size: int = 64) -> list[Image.Image]:
    """Smooth random colour fields (Inception sees structure, not white noise), brightened by shift."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 200, size=(4, 4, 3)).astype(np.uint8)
        img = Image.fromarray(small).resize((size, size), Image.BICUBIC)
        arr = np.clip(np.asarray(img).astype(int) + shift, 0, 255).astype(np.uint8)
        out.append(Image.fromarray(arr))
    return out


def test_converted_inception_matches_torchscript() -> None:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x,
    )

    from svdinst.evaluation.inception import inception_weights_path, load_torchscript_inception

    fe = FeatureExtractorInceptionV3(
        "inception-v3-compat",
        ["2048"],
        feature_extractor_weights_path=str(inception_weights_path()),
    )
    ts = load_torchscript_inception()
    g = torch.Generator().manual_seed(0)
    # torch-fidelity takes uint8 and resizes to 299 itself; the TorchScript model takes 299-px
    # floats in [-1, 1): x/128 - 1 is fid-helper's TF input range (-1, 0.9921875).
    for size in (299, 64):
        x = torch.randint(0, 256, (1, 3, size, size), generator=g, dtype=torch.uint8)
        with torch.no_grad():
            ours = fe(x)[0]
            big = interpolate_bilinear_2d_like_tensorflow1x(
                x.float(), size=(299, 299), align_corners=False
            )
            ref = ts((big - 128) / 128)
        assert ours.shape == ref.shape == (1, 2048)
        assert ours.abs().mean() > 0.05  # real features, not zeros
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_fid_self_is_zero_and_grows_with_shift() -> None:
    from svdinst.evaluation.metrics import fid_kid

    ref = _images(3, seed=1)
    same = fid_kid(ref, ref, device="cpu")
    near = fid_kid(_images(3, seed=1, shift=25), ref, device="cpu")
    far = fid_kid(_images(3, seed=1, shift=70), ref, device="cpu")
    assert same["n_generated"] == same["n_reference"] == 3
    assert same["kid_subset_size"] == 3  # adapts to the small set (default would be 1000)
    assert abs(same["fid"]) < 1e-3 * far["fid"]
    assert 0 < near["fid"] < far["fid"]
    assert near["kid_mean"] < far["kid_mean"]


@pytest.mark.parametrize("n1,n2", [(40, 30), (150, 120)])  # low-rank and full-rank paths
def test_frechet_distance_equals_torch_fidelity_formula(n1: int, n2: int) -> None:
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    from svdinst.evaluation.metrics import frechet_distance

    g = torch.Generator().manual_seed(0)
    f1 = torch.randn(n1, 64, generator=g, dtype=torch.float64) @ torch.randn(
        64, 64, generator=g, dtype=torch.float64
    )
    f2 = torch.randn(n2, 64, generator=g, dtype=torch.float64) + 0.3
    ref = fid_statistics_to_metric(
        fid_features_to_statistics(f1), fid_features_to_statistics(f2), verbose=False
    )["frechet_inception_distance"]
    assert frechet_distance(f1, f2) == pytest.approx(ref, rel=1e-8)
    assert frechet_distance(f1, f1) == pytest.approx(0.0, abs=1e-8 * ref)


def test_fid_needs_two_images() -> None:
    from svdinst.evaluation.metrics import fid_kid

    with pytest.raises(DataError, match="at least 2"):
        fid_kid(_images(1, 0), _images(3, 0), device="cpu")


def test_lpips_diversity_zero_for_identical_and_positive_otherwise() -> None:
    from svdinst.evaluation.lpips import content_lpips, load_lpips, lpips_diversity

    scorer = load_lpips(random_backbone_for_tests=True)
    a = _images(3, seed=5)
    same = lpips_diversity({"photo": [a[0]] * 3}, scorer)
    diff = lpips_diversity({"photo": a}, scorer)
    assert same["mean"] == pytest.approx(0.0, abs=1e-7)
    assert same["n_pairs"] == 3
    assert diff["mean"] > 1e-3
    c = content_lpips({"photo": [a[0], a[1]]}, {"photo": a[0]}, scorer)
    assert c["n"] == 2
    assert c["mean"] == pytest.approx(scorer.distance([a[1]], [a[0]])[0] / 2, rel=1e-5)
    with pytest.raises(DataError, match="2 seeds"):
        lpips_diversity({"photo": [a[0]]}, scorer)
    # A non-square photo is compared through the stylizers' view: centre crop, then resize.
    wide = _images(1, seed=6, size=96)[0].resize((96, 64))
    crop = ImageOps.fit(wide, (32, 32), Image.BICUBIC)
    assert scorer.distance([crop], [wide])[0] == pytest.approx(0.0, abs=1e-7)
    assert scorer.distance([wide.resize((32, 32))], [wide])[0] > 1e-3


def test_lpips_backbone_file_is_mapped_and_missing_is_unavailable(tmp_path, monkeypatch) -> None:
    from svdinst.evaluation.lpips import ALEXNET_CONVS, load_lpips

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert load_lpips() is None  # no weights anywhere → unavailable, never a random trunk
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_lpips(tmp_path / "nope.pth")
    torch.manual_seed(3)
    shapes = {  # torchvision's alexnet().features conv layers
        0: (64, 3, 11, 11),
        3: (192, 64, 5, 5),
        6: (384, 192, 3, 3),
        8: (256, 384, 3, 3),
        10: (256, 256, 3, 3),
    }
    state = {}
    for idx, shape in shapes.items():
        state[f"features.{idx}.weight"] = torch.randn(shape)
        state[f"features.{idx}.bias"] = torch.randn(shape[0])
    file = tmp_path / "alexnet.pth"
    torch.save(state, file)
    scorer = load_lpips(file)
    trunk = {k: v for k, v in scorer.model.net.state_dict().items()}
    for idx in ALEXNET_CONVS:
        (key,) = [k for k in trunk if k.endswith(f".{idx}.weight")]
        torch.testing.assert_close(trunk[key], state[f"features.{idx}.weight"])
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ModelNotFoundError, match="not torchvision's AlexNet"):
        load_lpips(tmp_path / "bad.pth")


def test_artfid_and_oracle() -> None:
    from svdinst.evaluation.metrics import artfid
    from svdinst.evaluation.oracle import native_crop, oracle_distance

    assert artfid(100.0, 0.5) == pytest.approx(151.5)
    a = _images(2, seed=7)
    noisy = [Image.fromarray(255 - np.asarray(img)) for img in a]
    perfect = oracle_distance({"x": [a[0]], "y": [a[1]]}, {"x": a[0], "y": a[1]})
    worse = oracle_distance({"x": [noisy[0]], "y": [noisy[1]]}, {"x": a[0], "y": a[1]})
    assert perfect["ssim"] == pytest.approx(1.0)
    assert worse["ssim"] < 0.5 and worse["psnr"] < 20
    assert perfect["lpips"] == "unavailable" and perfect["n"] == 2
    wide = Image.new("RGB", (300, 100))
    assert native_crop(wide, (64, 64)).size == (100, 100)  # full-resolution centre square


def test_corrupt_generated_image_fails_clearly(tmp_path) -> None:
    from svdinst.evaluation.metrics import evaluate

    gen = tmp_path / "gen" / "photo"
    gen.mkdir(parents=True)
    for k, img in enumerate(_images(2, seed=0)):
        img.save(gen / f"seed-{k}.png")
    (gen / "seed-2.png").write_bytes(b"not a png")
    style = tmp_path / "style"
    style.mkdir()
    for k, img in enumerate(_images(2, seed=1)):
        img.save(style / f"s{k}.png")
    with pytest.raises(DataError, match=r"seed-2\.png"):
        evaluate(tmp_path / "gen", style, device="cpu")
    with pytest.raises(DataError, match="no outputs"):
        evaluate(style, style, device="cpu")


def test_decoding_workers_give_the_same_numbers_and_name_a_bad_file(tmp_path) -> None:
    """Worker processes (the GPU default) decode the same pixels; a corrupt output read in a
    worker is still one DataError naming the file, not the worker's traceback."""
    from svdinst.evaluation.metrics import evaluate

    out, content, style = _evaluate_folder(tmp_path, photos=3, seeds=2)
    kw = {"mural_oracle": True, "device": "cpu", "batch_size": 4}
    inline = evaluate(out, style, content, num_workers=0, **kw)
    workers = evaluate(out, style, content, num_workers=2, **kw)
    for key in ("fid", "N", "oracle"):
        assert workers[key] == inline[key], key
    (out / "p1" / "seed-1.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"seed-1\.png") as err:
        evaluate(out, style, content, num_workers=2, **kw)
    assert "Traceback" not in str(err.value)


def test_oracle_without_content_fails_before_any_feature_is_computed(monkeypatch) -> None:
    import svdinst.evaluation.metrics as metrics

    def no_features(*args, **kwargs):
        raise AssertionError("FID/KID computed before the settings were checked")

    monkeypatch.setattr(metrics, "fid_kid", no_features)
    with pytest.raises(DataError, match="mural oracle needs --content"):
        metrics.evaluate("no-such-folder", "no-such-style", None, mural_oracle=True)


def _evaluate_folder(tmp_path, photos: int = 4, seeds: int = 3):
    """An outputs folder (photos × seeds; the last photo's outputs larger, so a batch holds two
    output sizes), its content photos (a third size) and style set."""
    from svdinst.formats.outputs import OutputsFolder

    out, content, style = (tmp_path / n for n in ("out", "content", "style"))
    content.mkdir()
    style.mkdir()
    for k, img in enumerate(_images(photos, seed=5, size=80)):
        img.save(content / f"p{k}.png")
        size = 64 if k < photos - 1 else 72
        for s, gen in enumerate(_images(seeds, seed=10 * k + 1, shift=20, size=size)):
            OutputsFolder(out).save_image(f"p{k}", s, gen)
    for k, img in enumerate(_images(3, seed=9)):
        img.save(style / f"s{k}.png")
    return out, content, style


@pytest.mark.parametrize("batch_size", [2, 7])
def test_evaluate_streams_and_gives_the_all_in_memory_numbers(
    tmp_path, monkeypatch, batch_size
) -> None:
    """Issues 13 and 15: evaluate() streams (one photo's seeds decoded at a time here, features
    and LPIPS scored in device batches that mix photos and output sizes) and gives the numbers
    of the all-in-memory, one-metric-at-a-time computation (kept here). Tolerance: the same ops
    on the same uint8 pixels, but LPIPS features of each image are computed once in a batch of
    another composition and the means are summed in another order: rel 1e-6 (float32 nets);
    PSNR/SSIM are float64 on both sides (avg-pool vs scipy's uniform filter): rel 1e-9."""
    import weakref

    import svdinst.evaluation.metrics as metrics
    import svdinst.evaluation.stream as stream
    from svdinst.data import list_images, load_image
    from svdinst.data.mural import mural_proxy
    from svdinst.evaluation.lpips import content_lpips, load_lpips, lpips_diversity
    from svdinst.evaluation.oracle import native_crop, oracle_distance
    from svdinst.formats.outputs import OutputsFolder

    out, content, style = _evaluate_folder(tmp_path)
    scorer = load_lpips(random_backbone_for_tests=True)
    # The old path: every image in memory at once.
    groups = {s: [load_image(p) for p in f] for s, f in OutputsFolder(out).collect().items()}
    photos = {p.stem: load_image(p) for p in list_images(content)}
    flat = [img for imgs in groups.values() for img in imgs]
    old = metrics.fid_kid(flat, [load_image(p) for p in list_images(style)], device="cpu")
    div = lpips_diversity(groups, scorer)
    targets = {s: mural_proxy(native_crop(photos[s], groups[s][0].size)) for s in groups}
    oracle = oracle_distance(groups, targets, scorer)
    content_mean = content_lpips(groups, photos, scorer)["mean"]
    del groups, photos, flat

    live, peak = set(), [0]

    def tracked(path):
        img = load_image(path)
        if out in Path(path).parents:  # the outputs (the style set is small and kept)
            live.add(id(img))
            weakref.finalize(img, live.discard, id(img))
            peak[0] = max(peak[0], len(live))
        return img

    monkeypatch.setattr(stream, "load_image", tracked)
    new = metrics.evaluate(
        out, style, content, mural_oracle=True, device="cpu", lpips_scorer=scorer,
        batch_size=batch_size,
    )  # fmt: skip
    assert peak[0] <= 3  # one photo's seeds at a time; was all 12
    assert new["fid"] == pytest.approx(old["fid"], rel=1e-6, abs=1e-9)
    assert new["kid"]["mean"] == pytest.approx(old["kid_mean"], rel=1e-6, abs=1e-12)
    assert new["N"] == 12 and new["n_photos"] == 4 and new["seeds_per_photo"] == 3
    assert new["lpips_diversity"] == pytest.approx(div["mean"], rel=1e-6)
    assert new["lpips_diversity_std"] == pytest.approx(div["std"], rel=1e-5, abs=1e-9)
    assert new["content_lpips"] == pytest.approx(content_mean, rel=1e-6)
    assert new["artfid"] == pytest.approx(metrics.artfid(old["fid"], content_mean), rel=1e-6)
    for key, rel in (("psnr", 1e-9), ("ssim", 1e-9), ("lpips", 1e-6), ("n", 0)):
        assert new["oracle"][key] == pytest.approx(oracle[key], rel=rel), key


class _BlasThreads(torch.utils.data.Dataset):
    """Reports, from inside a DataLoader worker, how many threads its BLAS pools may use."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> int:
        from threadpoolctl import threadpool_info

        return max((pool["num_threads"] for pool in threadpool_info()), default=1)


def test_decoding_workers_compute_with_one_blas_thread() -> None:
    """The mural oracle's NumPy products ran one BLAS thread per core in every decoding worker
    (15 workers × 16 threads on an H100 host, 7× slower): evaluate's loader gives each one."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from svdinst.evaluation.stream import decoding_loader

    with threadpool_limits(2):  # a forked worker inherits the parent's pools, here 2 threads
        assert max(p["num_threads"] for p in threadpool_info()) == 2
        assert list(decoding_loader(_BlasThreads(), workers=1, pin_memory=False)) == [1, 1]
