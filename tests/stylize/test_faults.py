"""Issue 14, Checked list and items 5/7 (stylize part): a disk that fills up midway leaves no
partial file, and a rerun with space ends byte-equal to an uninterrupted run; a run or a model
that decodes to NaN is refused with one line instead of saving black images."""

from __future__ import annotations

import errno
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from PIL import Image
from stylize_helpers import FAST

import svdinst.cli as cli
from svdinst.errors import SvdinstError

SEEDS = 4  # two batches of FAST's batch size 2


def _argv(run: Path, content: Path, out: Path) -> list[str]:
    flags = ["--steps", str(FAST["steps"]), "--strength", str(FAST["strength"])]
    return [
        "stylize", "--run", str(run), "--content", str(content), "--out", str(out),
        "--seeds", str(SEEDS), "--batch-size", str(FAST["batch_size"]), "--device", "cpu", *flags,
    ]  # fmt: skip


def _assert_clean(out: Path) -> None:
    """No temporary or hidden file anywhere, and every image decodes whole."""
    names = [p for p in out.rglob("*") if p.is_file()]
    assert not [p for p in names if p.name.startswith(".") or p.suffix == ".tmp"], names
    for png in out.rglob("*.png"):
        with Image.open(png) as im:
            im.load()


def _one_line(capsys: pytest.CaptureFixture) -> str:
    """The one error line (progress bars aside), and no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("svdinst:")]
    assert len(lines) == 1 and lines[0].startswith("svdinst: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_disk_full_midway_then_rerun_equals_an_uninterrupted_run(
    svd_run: Path, data_dirs, tmp_path: Path, monkeypatch, capsys
) -> None:
    content = data_dirs["content"]
    reference = tmp_path / "reference"
    assert cli.main(_argv(svd_run, content, reference)) == 0
    capsys.readouterr()

    real_save = Image.Image.save
    saved = []

    def save_until_full(self, fp, *args, **kwargs):  # the 4th image hits a full disk
        if len(saved) == 3:
            Path(fp).write_bytes(b"\x89PNG\r\n\x1a\n half")  # a partial temporary file
            raise OSError(errno.ENOSPC, "No space left on device")
        saved.append(fp)
        return real_save(self, fp, *args, **kwargs)

    out = tmp_path / "outputs"
    monkeypatch.setattr(Image.Image, "save", save_until_full)
    assert cli.main(_argv(svd_run, content, out)) == 2
    line = _one_line(capsys)
    assert "No space left on device" in line and "seed-3.png" in line, line
    _assert_clean(out)
    assert (out / "settings.json").is_file()  # written first: the rerun knows the settings
    assert len(list(out.rglob("*.png"))) == 3

    monkeypatch.setattr(Image.Image, "save", real_save)  # space again
    assert cli.main(_argv(svd_run, content, out)) == 0
    _assert_clean(out)
    ref = sorted(p.relative_to(reference) for p in reference.rglob("*.png"))
    assert sorted(p.relative_to(out) for p in out.rglob("*.png")) == ref and len(ref) == SEEDS
    for rel in ref:
        assert (out / rel).read_bytes() == (reference / rel).read_bytes(), rel


def test_real_full_tmpfs(svd_run: Path, data_dirs, tmp_path: Path, capsys) -> None:
    """Optional: a real 200 KB tmpfs (needs permission to mount; skipped elsewhere)."""
    point = tmp_path / "small"
    point.mkdir()
    cmd = ["mount", "-t", "tmpfs", "-o", "size=200k", "none", str(point)]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        pytest.skip("mount -t tmpfs is not permitted here")
    try:
        (point / "ballast").write_bytes(b"\0" * (200 * 1024 - 12 * 1024))  # leave ~12 KB free
        out = point / "outputs"
        assert cli.main(_argv(svd_run, data_dirs["content"], out)) == 2
        assert "No space left on device" in _one_line(capsys)
        _assert_clean(out)
    finally:
        subprocess.run(["umount", str(point)], check=True)


def test_nan_weights_are_refused_not_saved_black(svd_run: Path, data_dirs) -> None:
    from svdinst.stylize.config import StylizeConfig
    from svdinst.stylize.stylizer import Stylizer

    st = Stylizer(run=svd_run)
    next(st.pipe.unet.parameters()).data.fill_(float("nan"))
    image = Image.open(next(data_dirs["content"].iterdir()))
    for init in ("img2img", "inst"):
        cfg = StylizeConfig(**FAST, init=init)
        with pytest.raises(SvdinstError, match="not finite.*" + svd_run.name):
            st.stylize(image, [0], cfg)


def test_stylize_a_run_with_nan_shifts_is_one_line(
    svd_run: Path, data_dirs, tmp_path: Path, capsys
) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    run = tmp_path / "nan-run"
    shutil.copytree(svd_run, run, ignore=shutil.ignore_patterns("checkpoints"))
    shifts = run / "spectral_shifts.safetensors"
    with safe_open(str(shifts), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    tensors = {k: torch.full_like(v, float("nan")) for k, v in tensors.items()}
    save_file(tensors, str(shifts), metadata=meta)
    out = tmp_path / "outputs"
    assert cli.main(_argv(run, data_dirs["content"], out)) == 2
    assert "nan-run" in _one_line(capsys)
    assert not list(out.rglob("*.png"))  # no black image written
