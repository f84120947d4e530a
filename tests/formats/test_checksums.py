"""``SHA256SUMS``: written in ``sha256sum`` format, sums the caller computed already reused."""

from __future__ import annotations

import hashlib
from pathlib import Path


def test_write_checksums_hashes_only_files_without_a_known_sum(tmp_path: Path) -> None:
    from svdinst.formats.checksums import SUMS, verify_checksums, write_checksums

    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "w.bin").write_bytes(b"weights")
    (tmp_path / "README.md").write_text("card")
    sums = write_checksums(tmp_path)
    assert sums == {
        "README.md": hashlib.sha256(b"card").hexdigest(),
        "unet/w.bin": hashlib.sha256(b"weights").hexdigest(),
    }
    assert verify_checksums(tmp_path) == []
    # a known sum is taken as given (not hashed again): a wrong one shows up in the listing
    again = write_checksums(tmp_path, known={"unet/w.bin": "0" * 64})
    assert again["unet/w.bin"] == "0" * 64 and again["README.md"] == sums["README.md"]
    assert f"{'0' * 64}  unet/w.bin\n" in (tmp_path / SUMS).read_text()
    assert verify_checksums(tmp_path) == ["changed: unet/w.bin"]
