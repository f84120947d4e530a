"""Session fixtures of the stylize tests: the photo/style folders and one trained svd-inst run."""

from __future__ import annotations

from pathlib import Path

import pytest
from stylize_helpers import _photo


@pytest.fixture(scope="session")
def data_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stylize-data")
    dirs = {name: root / name for name in ("content", "style")}
    for d in dirs.values():
        d.mkdir()
    _photo(1).save(dirs["content"] / "harbour.png")
    for k in range(2):
        _photo(10 + k, (64, 64)).save(dirs["style"] / f"mural-{k}.png")
    return dirs


@pytest.fixture(scope="session")
def svd_run(tiny_model_dir: Path, data_dirs, tmp_path_factory) -> Path:
    """A real svd-inst run (1 step) whose δ are then made large, so the shifts clearly matter."""
    from svdinst.training.config import TrainConfig
    from svdinst.training.loop import train

    out = tmp_path_factory.mktemp("runs") / "svd-inst"
    cfg = TrainConfig(
        model="tiny", style=[str(data_dirs["style"])], out=str(out), mode="svd-inst", steps=1,
        resolution=64, crop_pool=2, progress=False,
    )  # fmt: skip
    train(cfg)
    return out
