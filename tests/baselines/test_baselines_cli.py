"""``svdinst baseline NAME {train,stylize}``: the happy path on CPU and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from svdinst.baselines import get_baseline
from svdinst.cli import main


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-data")
    rng = np.random.default_rng(0)
    for split, n in (("content", 2), ("style", 2), ("test", 2)):
        (root / split).mkdir()
        for i in range(n):
            arr = rng.integers(0, 256, (40 + 8 * i, 48, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / split / f"{split}{i}.png")
    return root


def _error_line(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    """Run the command, expect exit status 2 and exactly one line on stderr; return it."""
    capsys.readouterr()  # drop earlier output (progress bars)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("svdinst: error: ")
    return err[0]


def test_cyclegan_train_then_stylize_on_cpu(data, tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "outputs" / "cyclegan"
    argv = ["baseline", "cyclegan", "train", "--content", str(data / "content"),
            "--style", str(data / "style"), "--steps", "5", "--out", str(run),
            "--size", "tiny", "--resolution", "32", "--device", "cpu",
            "--checkpoint-every", "4", "--batch-size", "2"]  # fmt: skip
    assert main(argv) == 0
    assert {"config.json", "model.safetensors", "log.csv"} <= {p.name for p in run.iterdir()}
    assert [p.name for p in sorted((run / "checkpoints").iterdir())] == [
        "step-000004", "step-000005",
    ]  # fmt: skip
    assert len((run / "log.csv").read_text().splitlines()) == 1 + 5
    # A second train into the same folder must not silently overwrite the checkpoints.
    assert "--resume" in _error_line(capsys, argv)
    # --resume with a larger --steps continues from step 5 (and keeps the run's own settings).
    assert main([*argv[:8], "7", *argv[9:11], "--resume", "--device", "cpu"]) == 0
    assert len((run / "log.csv").read_text().splitlines()) == 1 + 7

    assert main(["baseline", "cyclegan", "stylize", "--run", str(run), "--content",
                 str(data / "test"), "--out", str(out), "--device", "cpu"]) == 0  # fmt: skip
    for i in range(2):
        source = Image.open(data / "test" / f"test{i}.png")
        result = Image.open(out / f"test{i}" / "seed-0.png")
        assert result.size == source.size and result.mode == "RGB"
    settings = json.loads((out / "settings.json").read_text())
    assert settings["method"] == "cyclegan" and settings["seeds"] == [0]
    assert settings["config"]["ngf"] == 8 and settings["config"]["batch_size"] == 2
    assert settings["run"] == str(run.resolve())


def test_a_trained_model_without_checkpoints_is_not_silently_retrained(data, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["baseline", "fast_style", "train", "--content", str(data / "content"),
            "--style", str(data / "style"), "--steps", "2", "--out", str(run),
            "--size", "tiny", "--resolution", "32", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    first = (run / "model.safetensors").read_bytes()
    assert "--overwrite" in _error_line(capsys, argv)
    assert (run / "model.safetensors").read_bytes() == first  # untouched by the refused run
    assert main([*argv[:8], "3", *argv[9:], "--overwrite"]) == 0
    assert len((run / "log.csv").read_text().splitlines()) == 1 + 3  # a fresh log, not appended


def test_magenta_stylizes_without_a_run_at_the_asked_resolution(data, tmp_path):
    out = tmp_path / "magenta"
    (out / "photo-of-an-earlier-run").mkdir(parents=True)  # stale: must not be evaluated
    Image.new("RGB", (8, 8)).save(out / "photo-of-an-earlier-run" / "seed-0.png")
    assert main(["baseline", "magenta", "stylize", "--content", str(data / "test"),
                 "--style", str(data / "style"), "--out", str(out), "--resolution", "40",
                 "--device", "cpu"]) == 0  # fmt: skip
    assert Image.open(out / "test1" / "seed-0.png").size == (40, 40)
    assert not (out / "photo-of-an-earlier-run" / "seed-0.png").exists()


def test_bad_names_and_paths_give_one_clear_line(data, tmp_path, capsys):
    content, style = str(data / "content"), str(data / "style")
    train = ["train", "--content", content, "--style", style, "--steps", "1", "--out"]
    line = _error_line(capsys, ["baseline", "cyclegann", *train, str(tmp_path / "a")])
    assert "cyclegann" in line and "cyclegan" in line.split(";")[1]
    missing = str(tmp_path / "no-such-folder")
    line = _error_line(capsys, ["baseline", "cyclegan", "train", "--content", missing,
                                "--style", style, "--steps", "1", "--out", str(tmp_path / "b")])  # fmt: skip
    assert "no-such-folder" in line
    line = _error_line(capsys, ["baseline", "cyclegan", "stylize", "--content", content,
                                "--out", str(tmp_path / "c")])  # fmt: skip
    assert "--run" in line
    line = _error_line(capsys, ["baseline", "stargan", "stylize", "--run", missing,
                                "--content", content, "--out", str(tmp_path / "d")])  # fmt: skip
    assert "no-such-folder" in line
    line = _error_line(capsys, ["baseline", "magenta", "stylize", "--content", content,
                                "--out", str(tmp_path / "e")])  # fmt: skip
    assert "--style" in line
    line = _error_line(capsys, ["baseline", "cyclegan", *train, str(tmp_path / "f"),
                                "--vgg-weights", missing])  # fmt: skip
    assert "VGG" in line
    line = _error_line(capsys, ["baseline", "magenta", *train, str(tmp_path / "g"),
                                "--batch-size", "4"])  # fmt: skip
    assert "batch size" in line


def test_comparison_figures_read_what_the_cli_wrote(data, tmp_path):
    import matplotlib.pyplot as plt

    from svdinst.baselines.compare import comparison_grid, loss_curves
    from svdinst.errors import DataError

    outputs = tmp_path / "outputs"
    assert main(["baseline", "magenta", "stylize", "--content", str(data / "test"), "--style",
                 str(data / "style"), "--out", str(outputs / "magenta"), "--resolution", "32",
                 "--device", "cpu"]) == 0  # fmt: skip
    fig = comparison_grid(data / "test", outputs, ["magenta"], resolution=32)
    assert len(fig.axes) == 2 * 3  # 2 photos × (photo, mural proxy, magenta)
    plt.close(fig)
    with pytest.raises(DataError, match="cyclegan"):
        comparison_grid(data / "test", outputs, ["magenta", "cyclegan"])
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.csv").write_text("step,loss,lr,seconds\n1,2.5,0.1,0.1\n2,1.5,0.1,0.2\n")
    fig = loss_curves({"cyclegan": run, "magenta": tmp_path / "no-log"})
    assert len(fig.axes) == 1 and list(fig.axes[0].lines[0].get_ydata()) == [2.5, 1.5]
    plt.close(fig)


@pytest.mark.parametrize(("free_gib", "expected"), [(1.0, 1), (8.0, 6), (1000.0, 64)])
def test_full_size_batch_is_chosen_from_the_device_memory_and_printed(
    data, tmp_path, capsys, monkeypatch, free_gib: float, expected: int
) -> None:
    # BalaGAN's paper batch 64 took 15 GB of host RAM on a CPU; with little memory free the CLI
    # now picks a smaller batch and says so (an explicit --batch-size still wins: test above).
    import svdinst.baselines.cli as cli

    monkeypatch.setattr(cli, "available_memory_gib", lambda device: free_gib)
    # --steps 0 is refused now (issue 14): skip the (full-size, slow) training step instead.
    monkeypatch.setattr(get_baseline("balagan"), "fit", lambda self, *a, **k: [])
    run = tmp_path / "run"
    argv = ["baseline", "balagan", "train", "--content", str(data / "content"),
            "--style", str(data / "style"), "--steps", "1", "--out", str(run),
            "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"balagan: batch {expected} (paper: 64)" in out and "host RAM" in out
    assert json.loads((run / "config.json").read_text())["batch_size"] == expected
