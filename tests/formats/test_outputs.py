"""OutputsFolder: image naming, settings, collect (seed order), clear, method-folder names."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from svdinst.errors import DataError
from svdinst.formats.outputs import (
    OutputsFolder,
    image_name,
    image_seed,
    method_folder_name,
    method_folders,
    parse_method_folder,
)


def _img() -> Image.Image:
    return Image.new("RGB", (4, 4))


def test_image_names_and_method_folder_names_round_trip() -> None:
    assert image_name(3) == "seed-3.png" and image_seed("seed-3.png") == 3
    assert image_seed("seed-x.png") is None and image_seed("notes.txt") is None
    assert method_folder_name("inst", 0) == "inst"
    assert method_folder_name("svd-inst", 2) == "svd-inst-seed2"
    for method, seed in [("inst", 0), ("svd-inst", 2), ("fast_style", 11)]:
        assert parse_method_folder(method_folder_name(method, seed)) == (method, seed)
    assert parse_method_folder("svd-inst-seed0") == ("svd-inst", 0)


def test_collect_orders_by_seed_number_and_clear_keeps_other_files(tmp_path: Path) -> None:
    out = OutputsFolder(tmp_path / "m")
    with pytest.raises(DataError, match="does not exist"):
        out.collect()
    for seed in (10, 2, 0):
        assert out.save_image("harbour", seed, _img()) == out.image_path("harbour", seed)
    out.save_image("street", 0, _img())
    (out.path / "harbour" / "notes.txt").write_text("mine")
    out.write_settings({"seeds": 3, "run": "runs/inst"})
    found = out.collect()
    assert list(found) == ["harbour", "street"]
    assert [p.name for p in found["harbour"]] == ["seed-0.png", "seed-2.png", "seed-10.png"]
    assert out.has_images() and out.clear() == 4 and not out.has_images()
    assert (out.path / "harbour" / "notes.txt").exists()
    assert out.read_settings() == {"seeds": 3, "run": "runs/inst"}
    with pytest.raises(DataError, match="no outputs"):
        out.collect()
    assert OutputsFolder(tmp_path / "none").read_settings() == {}


def test_method_folders_group_training_seeds(tmp_path: Path) -> None:
    for name in ("inst", "inst-seed1", "cyclegan"):
        OutputsFolder(tmp_path / name).save_image("a", 0, _img())
    (tmp_path / "empty").mkdir()
    groups = method_folders(tmp_path)
    assert {k: [p.name for p in v] for k, v in groups.items()} == {
        "cyclegan": ["cyclegan"], "inst": ["inst", "inst-seed1"]
    }  # fmt: skip
    assert method_folders(tmp_path / "missing") == {}
