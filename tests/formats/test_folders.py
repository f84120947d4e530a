"""Safe output folders: refuse a user's folder, replace only the kit's files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from svdinst.formats.folders import (
    MANIFEST,
    OutputFolderError,
    prepare_output_folder,
    publish_folder,
    remove_ours,
    write_manifest,
    written_files,
)


def _stage(parent: Path, files: dict[str, str]) -> Path:
    staged = parent / ".staged"
    for name, text in files.items():
        (staged / name).parent.mkdir(parents=True, exist_ok=True)
        (staged / name).write_text(text)
    write_manifest(staged, "a test folder")
    return staged


def test_prepare_accepts_new_empty_and_ours(tmp_path: Path) -> None:
    assert prepare_output_folder(tmp_path / "new", overwrite=False, what="x") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    prepare_output_folder(tmp_path / "empty", overwrite=False, what="x")
    publish_folder(_stage(tmp_path, {"a/b.txt": "1"}), tmp_path / "ours")
    prepare_output_folder(tmp_path / "ours", overwrite=False, what="x")


def test_prepare_refuses_a_users_folder_unless_overwrite(tmp_path: Path) -> None:
    (tmp_path / "v" / "sub").mkdir(parents=True)
    (tmp_path / "v" / "thesis.tex").write_text("precious")
    with pytest.raises(OutputFolderError, match=r"v: not empty .*thesis\.tex.*--overwrite"):
        prepare_output_folder(tmp_path / "v", overwrite=False, what="the model")
    prepare_output_folder(tmp_path / "v", overwrite=True, what="the model")


def test_prepare_refuses_a_file_and_an_unwritable_place(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputFolderError, match=r"f' is a file"):
        prepare_output_folder(tmp_path / "f", overwrite=True, what="x")
    with pytest.raises(OutputFolderError, match=r"f' is a file, so .*sub' cannot be created"):
        prepare_output_folder(tmp_path / "f" / "sub", overwrite=True, what="x")
    # Root ignores permissions, so the read-only answer is simulated.
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(OutputFolderError, match=r"not writable .*fix its permissions"):
        prepare_output_folder(tmp_path / "ro" / "model", overwrite=False, what="x")


def test_publish_beside_user_files_then_replace_only_ours(tmp_path: Path) -> None:
    out = tmp_path / "v"
    (out / "sub").mkdir(parents=True)
    (out / "thesis.tex").write_text("precious")
    publish_folder(_stage(tmp_path, {"unet/w.bin": "1", "README.md": "r"}), out)
    assert written_files(out) == {"unet/w.bin", "README.md"}
    publish_folder(_stage(tmp_path, {"vae/w.bin": "2"}), out)  # a rebuild
    assert not (out / "unet").exists() and not (out / "README.md").exists()
    assert (out / "vae" / "w.bin").read_text() == "2"
    assert (out / "thesis.tex").read_text() == "precious" and (out / "sub").is_dir()
    assert remove_ours(out) == ["vae/w.bin"]
    assert sorted(p.name for p in out.iterdir()) == ["sub", "thesis.tex"]
    assert not (out / MANIFEST).exists()


def test_publish_never_overwrites_a_users_file(tmp_path: Path) -> None:
    out = tmp_path / "v"
    out.mkdir()
    (out / "README.md").write_text("mine")
    with pytest.raises(OutputFolderError, match=r"README\.md: not written by svdinst"):
        publish_folder(_stage(tmp_path, {"README.md": "kit"}), out)
    assert (out / "README.md").read_text() == "mine"


def test_remove_ours_removes_the_folder_it_made(tmp_path: Path) -> None:
    out = publish_folder(_stage(tmp_path, {"a/b/c.txt": "1"}), tmp_path / "m")
    remove_ours(out)
    assert not out.exists()
