"""Never lose a user's work (issue 14): --overwrite validates first, one writer per run folder,
finite settings and weights, a checkpoint on SIGINT/SIGTERM, messages that name the next command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from svdinst.cli import main
from svdinst.errors import RunFolderError, SvdinstError
from svdinst.formats.checkpoint import list_checkpoints
from svdinst.formats.run_folder import RunFolder
from svdinst.training.config import TrainConfig, TrainConfigError
from svdinst.training.inversion import save_learned_embeds
from svdinst.training.loop import train

FAST = {"resolution": 32, "crop_pool": 4, "progress": False, "warmup_steps": 1}
CLI_FAST = ["--resolution", "32", "--crop-pool", "4", "--warmup-steps", "1", "--no-progress"]

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def style_image(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("style") / "style.png"
    Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(path)
    return path


def _argv(model: Path | str, style: Path, out: Path, steps: int = 2) -> list[str]:
    return ["train", "--model", str(model), "--style", str(style), "--mode", "svdiff",
            "--steps", str(steps), "--out", str(out), *CLI_FAST]  # fmt: skip


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("svdinst: error: "), err
    return err[0]


def test_overwrite_with_a_mistyped_model_keeps_the_old_run(
    tmp_path, style_image, tiny_model_dir, capsys
):
    out = tmp_path / "run"
    assert main(_argv(tiny_model_dir, style_image, out)) == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert main([*_argv(tmp_path / "no-such-model", style_image, out), "--overwrite"]) == 2
    _one_error_line(capsys)
    assert _snapshot(out) == before  # byte-equal: nothing deleted, no lock left behind


def test_a_second_writer_is_refused_naming_the_first(tmp_path, style_image, capsys):
    out = tmp_path / "run"
    RunFolder(out).lock("svdinst train").acquire()  # held by this (alive) process
    assert main(_argv("tiny", style_image, out)) == 2
    line = _one_error_line(capsys)
    assert f"pid {os.getpid()}" in line and "since" in line and "another --out" in line
    assert RunFolder(out).lock_path.exists() and not RunFolder(out).has_config()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is free now (reuse within this test is vanishingly unlikely)
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    owner = {"pid": dead.pid, "host": os.uname().nodename, "started": "then"}
    folder.lock_path.write_text(json.dumps(owner))
    with folder.lock():
        assert json.loads(folder.lock_path.read_text())["pid"] == os.getpid()
    assert "stale lock" in capsys.readouterr().err
    assert not folder.lock_path.exists()  # released on exit


def test_the_lock_is_released_when_training_fails(tmp_path, style_image):
    config = TrainConfig(model="no-such-model", style=[str(style_image)], out=str(tmp_path / "r"),
                         mode="svdiff", steps=2, **FAST)  # fmt: skip
    with pytest.raises(SvdinstError):
        train(config)
    assert not Path(config.out).exists()  # no lock left, and no empty folder either


@pytest.mark.parametrize("flag", ["--lr-shifts", "--lr", "--lr-token"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_learning_rates_are_refused(tmp_path, style_image, flag, value, capsys):
    assert main([*_argv("tiny", style_image, tmp_path / "r"), f"{flag}={value}"]) == 2
    assert flag.lstrip("-").replace("-", "_") in _one_error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_resolution_zero_names_a_positive_multiple_of_8(style_image, tmp_path):
    with pytest.raises(TrainConfigError, match=r"positive multiple of 8 \(e\.g\. 512\)"):
        TrainConfig(model="tiny", style=[str(style_image)], out=str(tmp_path), resolution=0)


def test_nan_weights_are_never_saved(tmp_path):
    with pytest.raises(RunFolderError, match="not finite"):
        save_learned_embeds(tmp_path / "e.safetensors", "<x>", torch.full((8,), float("nan")))
    assert not (tmp_path / "e.safetensors").exists()


def test_checkpoints_by_default(style_image, tmp_path, tiny_model_dir):
    config = TrainConfig(model=str(tiny_model_dir), style=[str(style_image)],
                         out=str(tmp_path / "r"), mode="svdiff", steps=20, **FAST)  # fmt: skip
    assert config.checkpoint_interval == 2  # 10 % of the steps
    assert TrainConfig(model="t", style=["s"], out="o", steps=5000).checkpoint_interval == 100
    assert TrainConfig(model="t", style=["s"], out="o", steps=5).checkpoint_interval == 1
    train(config)
    assert [s for s, _ in list_checkpoints(config.out)] == [18, 20]  # keep_checkpoints=2


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_a_checkpoint_and_says_how_to_resume(
    tmp_path, style_image, tiny_model_dir, monkeypatch, capsys, signum, request
):
    import svdinst.training.loop as loop

    # A shell that starts a job in the background (`nohup … &`, some CI runners) hands it SIGINT
    # *ignored*; a user's terminal does not. Start from Python's own handler, as a user's run does
    # (the restore check below failed under nohup although training restored SIG_IGN correctly).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))

    real = loop.train

    def train_and_signal(config, **kw):
        def callback(step, loss):
            if step == 3:
                os.kill(os.getpid(), signum)

        return real(config, callback=callback, **kw)

    monkeypatch.setattr(loop, "train", train_and_signal)
    out = tmp_path / "run"
    argv = [*_argv(tiny_model_dir, style_image, out, steps=50), "--checkpoint-every", "0"]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 128 + signum
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "step 3 of 50" in err and "--resume" in err
    assert [s for s, _ in list_checkpoints(out)] == [3]
    assert not RunFolder(out).lock_path.exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    monkeypatch.setattr(loop, "train", real)
    assert main([*argv, "--resume", "--steps", "4"]) == 0  # the command the message names


def test_every_state_of_a_folder_names_the_command_that_continues_it(tmp_path, style_image, capsys):
    out = tmp_path / "run"
    RunFolder(out).write_config({"mode": "svdiff", "model": "tiny"})  # started, no checkpoint
    assert main(_argv("tiny", style_image, out)) == 2
    plain = _one_error_line(capsys)
    assert main([*_argv("tiny", style_image, out), "--resume"]) == 2
    resumed = _one_error_line(capsys)
    for line in (plain, resumed):  # both say the same: no checkpoint, start over
        assert "no checkpoint" in line and "--overwrite" in line
    assert main([*_argv("tiny", style_image, tmp_path / "new"), "--resume"]) == 2
    assert "without --resume" in _one_error_line(capsys)


@pytest.mark.parametrize("bad", [{"strength": float("nan")}, {"guidance": float("inf")},
                                 {"resolution": 0}])  # fmt: skip
def test_stylize_settings_must_be_finite_and_in_range(bad):
    from svdinst.stylize.config import StylizeConfig

    with pytest.raises(SvdinstError, match=r"finite|positive multiple of 8"):
        StylizeConfig(**bad)


def test_load_run_refuses_a_run_whose_tensors_are_not_finite(tmp_path, style_image, tiny_model_dir):
    from safetensors.torch import load_file, save_file

    from svdinst.models.loading import load_components
    from svdinst.training.runs import load_run

    config = TrainConfig(model=str(tiny_model_dir), style=[str(style_image)],
                         out=str(tmp_path / "r"), mode="svdiff", steps=1, **FAST)  # fmt: skip
    train(config)
    shifts = RunFolder(config.out).spectral_shifts
    tensors = load_file(shifts)
    first = next(iter(tensors))
    tensors[first] = torch.full_like(tensors[first], float("nan"))
    save_file(tensors, str(shifts))  # what an old, unchecked NaN run left behind
    comps = load_components(str(tiny_model_dir), ["unet", "text_encoder", "tokenizer"])
    with pytest.raises(RunFolderError, match=rf"{RunFolder.SPECTRAL_SHIFTS}.*not finite"):
        load_run(config.out, comps)


def test_resolution_defaults_to_the_models_native_size(tmp_path, style_image, tiny_model_dir):
    out = tmp_path / "r"

    def argv(steps: int) -> list[str]:
        return ["train", "--model", str(tiny_model_dir), "--style", str(style_image), "--mode",
                "svdiff", "--steps", str(steps), "--out", str(out), "--crop-pool", "1",
                "--no-progress"]  # fmt: skip

    assert main(argv(1)) == 0
    saved = json.loads(RunFolder(out).config_path.read_text())
    assert saved["resolution"] == 64  # tiny: UNet sample_size 8 × VAE factor 8
    assert main([*argv(2), "--resume"]) == 0  # the default resolves to the saved size again
