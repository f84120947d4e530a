"""Image loading and validation, transforms, the default data set and `svdinst data`."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from svdinst.cli import main
from svdinst.data import default as default_module
from svdinst.data import transforms as data
from svdinst.data.default import PHOTOS, default_files, ensure_dataset, prepare_default_dataset
from svdinst.data.io import check_folder, list_images, load_image, load_images
from svdinst.errors import DataError
from svdinst.formats.folders import MANIFEST, written_files

RNG = np.random.default_rng(0)
PIXELS = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)


def _encoded(fmt: str, image: Image.Image | None = None) -> bytes:
    buf = io.BytesIO()
    (image or Image.fromarray(PIXELS)).save(buf, format=fmt)
    return buf.getvalue()


def _write(path: Path, payload: bytes) -> Path:
    path.write_bytes(payload)
    return path


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """Two good images, every kind of bad file, a hidden file and a README."""
    _write(tmp_path / "good.png", _encoded("PNG"))
    _write(tmp_path / "good2.jpg", _encoded("JPEG"))
    _write(tmp_path / "corrupt.jpg", RNG.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    _write(tmp_path / "truncated.jpg", _encoded("JPEG")[:400])
    _write(tmp_path / "notes.png", b"this is a text file, not a PNG\n")
    _write(tmp_path / "empty.png", b"")
    _write(tmp_path / ".DS_Store", b"\x00\x01")
    _write(tmp_path / "README.txt", b"my photos")
    return tmp_path


# --- load_image: error paths ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("corrupt.jpg", "not an image"),
        ("truncated.jpg", "truncated or corrupt"),
        ("notes.png", "not an image"),
        ("empty.png", "empty"),
        ("missing.png", "no such image file"),
    ],
)
def test_bad_files_raise_a_data_error_naming_the_file(
    mixed_folder: Path, name: str, match: str
) -> None:
    with pytest.raises(DataError, match=match) as info:
        load_image(mixed_folder / name)
    assert name in str(info.value)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncation_is_caught_although_pil_opens_lazily(tmp_path: Path, fmt: str) -> None:
    big = Image.fromarray(np.random.default_rng(1).integers(0, 256, (96, 96, 3), dtype=np.uint8))
    path = _write(
        tmp_path / f"cut.{fmt.lower()}", _encoded(fmt, big)[: len(_encoded(fmt, big)) // 2]
    )
    with Image.open(path) as im:  # PIL only reads the header here: the file looks fine
        assert im.size == (96, 96)
    with pytest.raises(DataError, match=r"truncated or corrupt.*Re-copy"):
        load_image(path)


# --- load_image: mode conversions ----------------------------------------------------------


def test_rgb_roundtrip_is_exact(tmp_path: Path) -> None:
    im = load_image(_write(tmp_path / "a.png", _encoded("PNG")))
    assert im.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(im), PIXELS)


def test_grayscale_repeats_the_channel(tmp_path: Path) -> None:
    gray = Image.fromarray(PIXELS[..., 0])
    im = load_image(_write(tmp_path / "g.png", _encoded("PNG", gray)))
    arr = np.asarray(im)
    assert im.mode == "RGB"
    for c in range(3):
        np.testing.assert_array_equal(arr[..., c], PIXELS[..., 0])


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    np.testing.assert_array_equal(np.asarray(load_image(path))[0, :, 0], [0, 1, 128, 255])


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 0, 0, 0)  # fully transparent → white
    rgba[0, 1] = (200, 0, 0, 255)  # opaque → unchanged
    rgba[1, 0] = (0, 0, 0, 128)  # half-transparent black over white → mid grey
    im = load_image(_write(tmp_path / "t.png", _encoded("PNG", Image.fromarray(rgba, "RGBA"))))
    arr = np.asarray(im).astype(int)
    assert im.mode == "RGB"
    assert tuple(arr[0, 0]) == (255, 255, 255)
    assert tuple(arr[0, 1]) == (200, 0, 0)
    assert np.abs(arr[1, 0] - 127).max() <= 1


def test_palette_images_convert_with_and_without_transparency(tmp_path: Path) -> None:
    pal = Image.fromarray(PIXELS).quantize(colors=8)
    expected = np.asarray(pal.convert("RGB"))
    np.testing.assert_array_equal(
        np.asarray(load_image(_write(tmp_path / "p.png", _encoded("PNG", pal)))), expected
    )
    pal.info["transparency"] = int(np.asarray(pal)[0, 0])
    path = tmp_path / "pt.png"
    pal.save(path, transparency=pal.info["transparency"])
    assert tuple(np.asarray(load_image(path))[0, 0]) == (255, 255, 255)


def test_cmyk_and_float_modes(tmp_path: Path) -> None:
    cmyk = Image.fromarray(PIXELS).convert("CMYK")
    assert load_image(_write(tmp_path / "c.jpg", _encoded("JPEG", cmyk))).mode == "RGB"
    path = tmp_path / "f.tif"
    Image.fromarray(PIXELS[..., 0].astype(np.float32)).save(path)
    with pytest.raises(DataError, match=r"f\.tif: unsupported image mode 'F'"):
        load_image(path)


# --- folders --------------------------------------------------------------------------------


def test_check_folder_lists_every_bad_file(mixed_folder: Path) -> None:
    problems = dict((p.name, why) for p, why in check_folder(mixed_folder))
    assert set(problems) == {"corrupt.jpg", "truncated.jpg", "notes.png", "empty.png"}


def test_list_images_names_all_bad_files_and_skips_others_loudly(mixed_folder: Path) -> None:
    with pytest.warns(UserWarning, match="README.txt"), pytest.raises(DataError) as info:
        list_images(mixed_folder)
    for name in ("corrupt.jpg", "truncated.jpg", "notes.png", "empty.png"):
        assert name in str(info.value)
    for name in ("corrupt.jpg", "truncated.jpg", "notes.png", "empty.png"):
        (mixed_folder / name).unlink()
    with pytest.warns(UserWarning, match="README.txt"):
        paths = list_images(mixed_folder)
    assert [p.name for p in paths] == ["good.png", "good2.jpg"]  # sorted; .DS_Store ignored
    with pytest.warns(UserWarning, match="README.txt"):
        images = load_images(mixed_folder)
    assert [im.size for im in images] == [(32, 24), (32, 24)]


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no images found"):
        list_images(tmp_path)
    with pytest.raises(DataError, match=r"image folder not found.*data prepare"):
        list_images(tmp_path / "nope")
    with pytest.raises(DataError, match="found a file"):
        list_images(_write(tmp_path / "x.png", _encoded("PNG")))


# --- transforms -----------------------------------------------------------------------------


def test_to_tensor_range_and_inverse() -> None:
    im = Image.fromarray(PIXELS)
    t = data.to_tensor(im)
    assert t.shape == (3, 24, 32) and t.dtype == torch.float32
    assert t.min() >= -1 and t.max() <= 1
    assert t[0, 0, 0].item() == pytest.approx(PIXELS[0, 0, 0] / 127.5 - 1)
    np.testing.assert_array_equal(np.asarray(data.to_image(t)), PIXELS)
    assert data.to_tensor(im, 16).shape == (3, 16, 16)
    assert data.images_to_batch([im, im], 8).shape == (2, 3, 8, 8)


def test_random_crop_flip_is_seeded() -> None:
    im = Image.fromarray(PIXELS)
    crops = [data.random_crop_flip(im, 12, np.random.default_rng(7)) for _ in range(2)]
    assert crops[0].size == (12, 12)
    np.testing.assert_array_equal(np.asarray(crops[0]), np.asarray(crops[1]))
    others = [data.random_crop_flip(im, 12, np.random.default_rng(s)) for s in range(8)]
    assert len({np.asarray(c).tobytes() for c in others}) > 1
    full = data.random_crop_flip(im, 24, np.random.default_rng(0), min_scale=1.0, flip=False)
    # The largest square, unflipped and not resized, is one of the 9 possible 24×24 windows.
    windows = [PIXELS[:, left : left + 24] for left in range(32 - 24 + 1)]
    assert any(np.array_equal(np.asarray(full), w) for w in windows)


# --- the default data set and the CLI -------------------------------------------------------


@pytest.fixture(scope="module")
def default_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    assert main(["data", "prepare", str(out)]) == 0
    return out


def test_prepare_writes_splits_and_licences(default_set: Path) -> None:
    files = sorted(str(p.relative_to(default_set)) for p in default_set.rglob("*") if p.is_file())
    files.remove(MANIFEST)  # the kit's list of what it wrote (svdinst.formats.folders)
    assert files == sorted(default_files())
    assert written_files(default_set) == set(default_files())
    licences = (default_set / "LICENSES.md").read_text()
    for name in files:
        if name != "LICENSES.md":
            assert f"`{name}`" in licences, f"LICENSES.md does not name {name}"
    assert "PROXY" in licences
    tests = {p.stem for p in list_images(default_set / "test")}
    assert tests == {s.stem for s in PHOTOS if s.split == "test"}
    assert not tests & {p.stem for p in list_images(default_set / "content")}
    # Style images are proxies of training photos only, never of held-out test photos.
    assert not any(t in p.name for p in list_images(default_set / "style") for t in tests)
    assert max(load_image(default_set / "content" / "rocket.png").size) == 512


def test_prepare_is_deterministic_and_idempotent(tmp_path: Path) -> None:
    a = prepare_default_dataset(tmp_path / "a", max_side=48)
    b = prepare_default_dataset(tmp_path / "b", max_side=48)
    for name in default_files():
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    stamp = (a / "LICENSES.md").stat().st_mtime_ns
    os.utime(a / "LICENSES.md", ns=(stamp - 10**9, stamp - 10**9))
    prepare_default_dataset(a, max_side=48, force=True)  # same bytes: nothing rewritten
    assert (a / "LICENSES.md").stat().st_mtime_ns == stamp - 10**9


def test_ensure_dataset(tmp_path: Path, default_set: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ensure_dataset(default_set) == default_set
    calls = []
    monkeypatch.setattr(default_module, "prepare_default_dataset", lambda d: calls.append(d) or d)
    ensure_dataset(tmp_path / "new")
    assert calls == [tmp_path / "new"]
    (tmp_path / "half" / "content").mkdir(parents=True)
    _write(tmp_path / "half" / "content" / "a.png", _encoded("PNG"))
    with pytest.raises(DataError, match="no images in style/"):
        ensure_dataset(tmp_path / "half")


def test_cli_check_passes_on_the_default_set(default_set: Path, capsys) -> None:
    assert main(["data", "check", str(default_set)]) == 0
    assert "11 image file(s)" in capsys.readouterr().out


def test_cli_check_names_the_corrupt_file(mixed_folder: Path, capsys) -> None:
    assert main(["data", "check", str(mixed_folder)]) == 1
    out = capsys.readouterr().out
    for name in ("corrupt.jpg", "truncated.jpg", "notes.png", "empty.png"):
        assert f"BAD {mixed_folder / name}:" in out
    assert "good.png" not in out.replace("BAD", "")
    assert f"note: {mixed_folder / 'README.txt'}" in out


def test_cli_check_split_folders_and_missing_folder(tmp_path: Path, capsys) -> None:
    (tmp_path / "content").mkdir()
    _write(tmp_path / "content" / "a.png", _encoded("PNG"))
    (tmp_path / "style").mkdir()
    _write(tmp_path / "style" / "bad.png", b"junk")
    assert main(["data", "check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"BAD {tmp_path / 'style' / 'bad.png'}" in out and "test: no such folder" in out
    assert main(["data", "check", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "image folder not found" in err


def test_cli_check_as_a_subprocess(mixed_folder: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "svdinst.cli", "data", "check", str(mixed_folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert str(mixed_folder / "corrupt.jpg") in result.stdout


def test_photos_are_read_exactly_as_the_packages_load_them() -> None:
    import skimage.data
    from matplotlib import cbook

    from svdinst.data.default import _source_image

    for source in PHOTOS:
        if source.package == "scikit-image":
            expected = getattr(skimage.data, source.stem)()
        elif source.package == "matplotlib":
            with cbook.get_sample_data(f"{source.stem}.jpg") as f:
                expected = np.asarray(Image.open(f).convert("RGB"))
        else:  # scikit-learn: importing it costs seconds; its loader is PIL on the same file
            continue
        np.testing.assert_array_equal(np.asarray(_source_image(source)), expected)


def test_package_names_its_public_api_lazily() -> None:
    import svdinst.data
    from svdinst.data import io, mural

    assert svdinst.data.load_image is io.load_image
    assert svdinst.data.to_tensor is data.to_tensor
    assert svdinst.data.ensure_dataset is default_module.ensure_dataset
    assert svdinst.data.mural_proxy is mural.mural_proxy
    for name in svdinst.data.__all__:
        assert getattr(svdinst.data, name) is not None, name
    assert dir(svdinst.data) == sorted(svdinst.data.__all__)
    with pytest.raises(AttributeError, match="no attribute 'images'"):
        getattr(svdinst.data, "images")  # noqa: B009  (the old grab-bag module is gone)


def test_data_cli_imports_nothing_heavy() -> None:
    # `svdinst --help` imports svdinst.data.cli: it must not load numpy, PIL or torch.
    code = (
        "import sys, svdinst.data.cli; "
        "print(sorted(m for m in ('numpy', 'PIL', 'torch', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_prepare_refuses_a_folder_of_other_images(tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine"
    (out / "style").mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(out / "style" / "my_painting.png")
    assert main(["data", "prepare", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and "--overwrite" in err[0]
    assert sorted(p.name for p in (out / "style").iterdir()) == ["my_painting.png"]
    assert not (out / "content").exists() and not (out / "LICENSES.md").exists()


def test_prepare_never_overwrites_a_users_file(tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine"
    (out / "content").mkdir(parents=True)
    name = default_files()[0]  # a photo's name in the default set
    (out / name).parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), "blue").save(out / name)
    (out / "LICENSES.md").write_text("my licences")
    mine = (out / name).read_bytes()
    assert main(["data", "prepare", str(out), "--overwrite"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]  # no tqdm
    assert len(err) == 1 and "not written by svdinst" in err[0] and "2 such" in err[0]
    assert (out / name).read_bytes() == mine
    assert (out / "LICENSES.md").read_text() == "my licences"
    assert name not in written_files(out) and "LICENSES.md" not in written_files(out)


def test_prepare_into_a_file_or_read_only_place_is_one_line(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    (tmp_path / "f").write_text("x")
    assert main(["data", "prepare", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "f' is a file" in err[0]
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # root ignores permissions
    assert main(["data", "prepare", str(tmp_path / "ro")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not writable" in err[0] and "permissions" in err[0]


# --- images the kit can read but should say something about (issue 14, item 8) ---------------


def test_tiny_image_warns_once_naming_the_file(tmp_path: Path) -> None:
    from svdinst.data.io import ImageWarning

    Image.new("RGB", (1, 1), "red").save(tmp_path / "dot.png")
    Image.new("RGB", (64, 80), "red").save(tmp_path / "ok.png")
    with pytest.warns(ImageWarning) as record:
        for _ in range(3):
            load_images(tmp_path)
    tiny = [str(w.message) for w in record if "tiny image" in str(w.message)]
    assert len(tiny) == 1 and "dot.png" in tiny[0] and "1×1" in tiny[0]


def test_images_in_subfolders_are_reported(tmp_path: Path, capsys) -> None:
    Image.new("RGB", (64, 64), "red").save(tmp_path / "top.png")
    (tmp_path / "more" / "deeper").mkdir(parents=True)
    for name in ("a.png", "deeper/b.jpg"):
        Image.new("RGB", (64, 64), "red").save(tmp_path / "more" / name)
    with pytest.warns(UserWarning, match=r"skipping 2 image\(s\) in sub-folders \(more/\)"):
        assert list_images(tmp_path) == [tmp_path / "top.png"]
    assert main(["data", "check", str(tmp_path)]) == 0
    assert "skipping 2 image(s) in sub-folders (more/)" in capsys.readouterr().out


def test_unreadable_image_is_not_called_corrupt(tmp_path: Path, monkeypatch) -> None:
    Image.new("RGB", (64, 64), "red").save(tmp_path / "locked.png")

    def denied(*args, **kwargs):  # root reads everything: simulate chmod 000
        raise PermissionError(13, "Permission denied", str(tmp_path / "locked.png"))

    monkeypatch.setattr(Image, "open", denied)
    with pytest.raises(DataError, match=r"locked\.png: not readable .*permissions") as err:
        load_image(tmp_path / "locked.png")
    assert "corrupt" not in str(err.value)


def test_huge_image_is_one_warning_per_file(tmp_path: Path, monkeypatch) -> None:
    import warnings

    # A 20×20 image over a 300-pixel limit stands in for a 12000² photo over PIL's 89 Mpixel.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)
    Image.new("RGB", (20, 20), "red").save(tmp_path / "huge.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            check_folder(tmp_path)
            load_images(tmp_path)
    messages = [str(w.message) for w in caught]
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert len([m for m in messages if "very large image" in m]) == 1
    assert "huge.png" in next(m for m in messages if "very large image" in m)
