"""The one checkpoint format: atomic, keep-last-K, RNG states round-trip, incomplete ones skipped."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from svdinst.errors import RunFolderError
from svdinst.formats import checkpoint as ckpt


def _draw() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_rng_states_of_python_numpy_and_torch_round_trip(tmp_path: Path) -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    ckpt.save_checkpoint(tmp_path, 7, {"x": torch.ones(2)})
    expected = _draw()
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    state = ckpt.load_latest_checkpoint(tmp_path)
    assert state["step"] == 7 and torch.equal(state["x"], torch.ones(2))
    ckpt.set_rng_state(state["rng"])
    assert _draw() == expected


def test_a_crash_mid_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch) -> None:
    ckpt.save_checkpoint(tmp_path, 1, {"x": torch.zeros(3)})
    real_save = torch.save

    def dying_save(obj, fh, *args, **kwargs):
        fh.write(b"half a pickle")
        raise KeyboardInterrupt  # killed in the middle of torch.save

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path, 2, {"x": torch.ones(3)})
    monkeypatch.setattr(torch, "save", real_save)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [1]
    assert [p.name for p in ckpt.checkpoints_dir(tmp_path).iterdir()] == ["step-000001"]
    assert torch.equal(ckpt.load_latest_checkpoint(tmp_path)["x"], torch.zeros(3))


def test_keep_last_k_and_keep_all(tmp_path: Path) -> None:
    for step in (1, 2, 3, 10):
        ckpt.save_checkpoint(tmp_path / "k", step, {}, keep=2)
        ckpt.save_checkpoint(tmp_path / "all", step, {}, keep=None)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "k")] == [3, 10]
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "all")] == [1, 2, 3, 10]
    assert ckpt.latest_checkpoint(tmp_path / "k").name == ckpt.step_dir_name(10) == "step-000010"


def test_incomplete_or_foreign_folders_are_not_checkpoints(tmp_path: Path) -> None:
    ckpt.save_checkpoint(tmp_path, 4, {})
    (ckpt.checkpoints_dir(tmp_path) / ckpt.step_dir_name(9)).mkdir()  # no state file
    (ckpt.checkpoints_dir(tmp_path) / "notes").mkdir()
    assert ckpt.latest_checkpoint(tmp_path).name == ckpt.step_dir_name(4)
    assert ckpt.latest_checkpoint(tmp_path / "none") is None
    with pytest.raises(RunFolderError, match="--resume"):
        ckpt.load_latest_checkpoint(tmp_path / "none")
    broken = ckpt.checkpoints_dir(tmp_path) / ckpt.step_dir_name(5)
    broken.mkdir()
    (broken / ckpt.STATE_FILE).write_bytes(b"junk")
    with pytest.raises(RunFolderError, match="unreadable"):
        ckpt.load_latest_checkpoint(tmp_path)
