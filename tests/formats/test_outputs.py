"""OutputsFolder: image naming, settings, collect (seed order), clear, method-folder names."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from PIL import Image

from svdinst.errors import DataError
from svdinst.formats.folders import OutputFolderError, check_writable
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


def test_failed_image_write_leaves_nothing_and_names_the_image(tmp_path: Path, monkeypatch) -> None:
    """Issue 14 item 7: a full disk mid-write leaves neither a partial image nor a temp file,
    and the error names the image (not the hidden temporary name) for the one-line message."""
    out = OutputsFolder(tmp_path / "m")
    out.save_image("harbour", 0, _img())

    def full_disk(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    with pytest.raises(OSError) as info:
        out.save_image("harbour", 1, _img())
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(out.image_path("harbour", 1))
    assert sorted(p.name for p in (tmp_path / "m" / "harbour").iterdir()) == ["seed-0.png"]


def test_check_writable(tmp_path: Path, monkeypatch) -> None:
    """Issue 14 item 7: --out refused before any work, one message naming the path."""
    a_file = tmp_path / "thesis.tex"
    a_file.write_text("precious")
    assert check_writable(tmp_path / "new" / "out", folder=True) == tmp_path / "new" / "out"
    assert check_writable(tmp_path / "m.json", folder=False) == tmp_path / "m.json"
    with pytest.raises(OutputFolderError, match="is a file, not a folder"):
        check_writable(a_file, folder=True)
    with pytest.raises(OutputFolderError, match=r"thesis\.tex' is a file"):
        check_writable(a_file / "sub" / "m.json", folder=False)
    with pytest.raises(OutputFolderError, match="is a folder; give"):
        check_writable(tmp_path, folder=False)
    # No write permission (simulated: the tests may run as root, who may write anywhere).
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(OutputFolderError, match=f"'{tmp_path}' is not writable"):
        check_writable(tmp_path / "out", folder=True)
