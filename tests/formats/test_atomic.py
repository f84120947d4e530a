"""Atomic writes: the target holds the old or the new content, never a part, and no temp stays."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from svdinst.formats.atomic import (
    atomic_path,
    save_image_atomic,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)


def test_writes_bytes_text_json_and_png(tmp_path: Path) -> None:
    assert write_bytes_atomic(tmp_path / "a" / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert write_text_atomic(tmp_path / "t.txt", "héllo").read_text(encoding="utf-8") == "héllo"
    path = write_json_atomic(tmp_path / "d.json", {"b": 1, "a": [2]}, sort_keys=True)
    assert path.read_text() == '{\n  "a": [\n    2\n  ],\n  "b": 1\n}\n'
    image = Image.new("RGB", (5, 3), (10, 20, 30))
    png = save_image_atomic(tmp_path / "img.png", image)
    with Image.open(png) as back:
        assert back.format == "PNG" and back.getpixel((4, 2)) == (10, 20, 30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "d.json", "img.png", "t.txt"]


def test_a_crash_mid_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = write_json_atomic(tmp_path / "config.json", {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"v": 2, "trunc')  # half of the new file, then the process "dies"
        raise RuntimeError("crash")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_the_file_is_fsynced_before_the_rename(tmp_path: Path, monkeypatch) -> None:
    events: list[str] = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), replace(a, b))[1])
    write_text_atomic(tmp_path / "x.txt", "x")
    assert events == ["fsync", "replace", "fsync"]  # file, rename, folder entry
