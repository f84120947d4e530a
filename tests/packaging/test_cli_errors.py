"""Issue 14, items 7 and 8 (CLI part): every user-fixable failure is one line ``svdinst: error:
…`` naming the path, with exit 2 (Ctrl-C: exit 130), and the CLI picks its thread count."""

from __future__ import annotations

import argparse
import errno
import json
from pathlib import Path

import pytest
import torch

import svdinst.cli as cli
from svdinst.threads import thread_count


def _one_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("svdinst: error: ") or err[0] == "svdinst: interrupted"
    return err[0]


class _Parser:
    """A parser whose command raises ``exc`` (what a command's deep write would raise)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def parse_args(self, argv):
        def func(args):
            raise self.exc

        return argparse.Namespace(func=func)


def test_ctrl_c_during_start_up_is_one_line(monkeypatch, capsys) -> None:
    def slow_imports():  # Ctrl-C while the command modules import torch
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", slow_imports)
    assert cli.main(["stylize", "--help"]) == 130
    assert _one_line(capsys) == "svdinst: interrupted"


@pytest.mark.parametrize(
    "code", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR]
)
def test_file_system_errors_are_one_line_naming_the_path(monkeypatch, capsys, code) -> None:
    exc = OSError(code, "simulated", "/some/out/seed-6.png")
    monkeypatch.setattr(cli, "build_parser", lambda: _Parser(exc))
    assert cli.main([]) == 2
    line = _one_line(capsys)
    assert "'/some/out/seed-6.png'" in line and cli.OS_ERROR_FIXES[code] in line


def test_other_os_errors_keep_their_traceback(monkeypatch) -> None:
    monkeypatch.setattr(cli, "build_parser", lambda: _Parser(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError):
        cli.main([])


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_respect_omp_num_threads(monkeypatch, restore_threads) -> None:
    monkeypatch.delenv("SVDINST_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(2)
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert torch.get_num_threads() == 1


def test_threads_default_rule(monkeypatch, restore_threads) -> None:
    monkeypatch.delenv("SVDINST_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    torch.set_num_threads(7)
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert torch.get_num_threads() == 4 == thread_count()
    assert thread_count({}, cpus=2) == 1  # two runs on a 2-core box: one core each
    assert thread_count({}, cpus=1) == 1
    assert thread_count({"SVDINST_THREADS": "3", "OMP_NUM_THREADS": "1"}, cpus=2) == 3


def test_bad_thread_setting_is_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setenv("SVDINST_THREADS", "many")
    assert cli.main(["--version"]) == 2
    assert "SVDINST_THREADS" in _one_line(capsys)


# ------------------------------------------------------------------ --out checks, before any work


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "thesis.tex"
    path.write_text("precious\n")
    return path


def test_stylize_out_is_a_file(a_file: Path, capsys) -> None:
    argv = ["stylize", "--model", "tiny", "--content", str(a_file), "--out", str(a_file)]
    assert cli.main(argv) == 2
    assert f"'{a_file}' is a file" in _one_line(capsys)
    assert a_file.read_text() == "precious\n"


def test_stylize_out_below_a_file(a_file: Path, capsys) -> None:
    out = a_file / "outputs"
    assert (
        cli.main(["stylize", "--model", "tiny", "--content", str(a_file), "--out", str(out)]) == 2
    )
    assert f"'{a_file}' is a file" in _one_line(capsys)


@pytest.mark.parametrize("flag", ["--strength", "--guidance", "--shift-scale"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_stylize_non_finite_numbers(tmp_path: Path, capsys, flag, value) -> None:
    argv = ["stylize", "--model", "tiny", "--content", str(tmp_path), "--out", str(tmp_path / "o")]
    assert cli.main([*argv, flag, value]) == 2
    assert flag in _one_line(capsys)
    assert not (tmp_path / "o").exists()


def test_baseline_stylize_out_is_a_file(a_file: Path, capsys) -> None:
    argv = ["baseline", "adain", "stylize", "--content", str(a_file), "--style", str(a_file)]
    assert cli.main([*argv, "--out", str(a_file)]) == 2
    assert f"'{a_file}' is a file" in _one_line(capsys)


def test_evaluate_out_is_a_folder_fails_before_computing(tmp_path: Path, capsys) -> None:
    argv = ["evaluate", "--generated", str(tmp_path), "--style", str(tmp_path)]
    assert cli.main([*argv, "--out", str(tmp_path)]) == 2
    assert f"'{tmp_path}' is a folder" in _one_line(capsys)


def test_evaluate_keeps_the_metrics_when_out_cannot_be_written(tmp_path: Path, a_file) -> None:
    from svdinst.errors import SvdinstError
    from svdinst.evaluation.cli import save_metrics_safely

    generated = tmp_path / "generated"
    generated.mkdir()
    metrics = {"fid": 1.5, "N": 3}
    with pytest.raises(SvdinstError, match="saved in") as info:
        save_metrics_safely(metrics, a_file / "metrics.json", generated)  # parent is a file
    (saved,) = generated.glob("metrics-*.json")
    assert str(saved) in str(info.value) and json.loads(saved.read_text()) == metrics


def _mount_tmpfs(point: Path, options: str) -> bool:
    import subprocess

    point.mkdir()
    cmd = ["mount", "-t", "tmpfs", "-o", options, "none", str(point)]
    return subprocess.run(cmd, capture_output=True).returncode == 0


def _umount(point: Path) -> None:
    import subprocess

    subprocess.run(["umount", str(point)], check=True)


def test_stylize_and_evaluate_on_a_read_only_file_system(tmp_path: Path, capsys) -> None:
    """Optional: needs permission to mount (root in a container); skipped elsewhere."""
    ro = tmp_path / "ro"
    if not _mount_tmpfs(ro, "ro,size=64k"):
        pytest.skip("mount -t tmpfs is not permitted here")
    try:
        out = ro / "outputs"
        argv = ["stylize", "--model", "tiny", "--content", str(tmp_path), "--out", str(out)]
        assert cli.main(argv) == 2
        assert "read-only" in _one_line(capsys)
        argv = ["evaluate", "--generated", str(tmp_path), "--style", str(tmp_path)]
        assert cli.main([*argv, "--out", str(ro / "m.json")]) == 2
        assert "read-only" in _one_line(capsys)
    finally:
        _umount(ro)
