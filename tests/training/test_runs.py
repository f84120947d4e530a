"""``ensure_run`` (issue 13, finding 5 and deliver 3): runs are keyed by their whole config, a
changed setting trains again (saying what changed), and an interrupted run resumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from svdinst.errors import RunFolderError
from svdinst.training import runs
from svdinst.training.config import TrainConfig
from svdinst.training.runs import ensure_run

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
FAST = {"resolution": 32, "crop_pool": 4, "progress": False, "warmup_steps": 2}


@pytest.fixture(scope="module")
def style_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("style")
    y, x = np.mgrid[0:48, 0:64]
    img = np.stack([(x * 4) % 256, (y * 5) % 256, ((x + y) // 8 % 2) * 200 + 30], -1)
    Image.fromarray(img.astype(np.uint8)).save(folder / "style.png")
    return folder


def _config(style_dir: Path, out: Path, **kw) -> TrainConfig:
    settings = {"mode": "svdiff", "steps": 6, "checkpoint_every": 2, **FAST, **kw}
    return TrainConfig(model="tiny", style=[str(style_dir)], out=str(out), **settings)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """How ``ensure_run`` called ``train`` (which then trains for real)."""
    seen: list[dict] = []
    real = runs.train

    def spy(config: TrainConfig, **kw):
        seen.append({"lr": config.lr, "steps": config.steps, **kw})
        return real(config, **kw)

    monkeypatch.setattr(runs, "train", spy)
    return seen


def test_same_config_is_reused_and_a_changed_lr_trains_again(style_dir, tmp_path, calls, capsys):
    config = _config(style_dir, tmp_path / "run", steps=2)
    assert ensure_run(config) == tmp_path / "run"
    assert len(calls) == 1
    ensure_run(_config(style_dir, tmp_path / "run", steps=2, progress=True, checkpoint_every=1))
    assert len(calls) == 1  # resumable-only fields (progress, checkpoints) are no change
    assert "Reusing" in capsys.readouterr().out
    changed = _config(style_dir, tmp_path / "run", steps=2, lr=5e-4)
    with pytest.raises(RunFolderError, match=r"lr: None → 0\.0005"):
        ensure_run(changed, make_missing=False)
    ensure_run(changed)
    assert calls[-1] == {"lr": 5e-4, "steps": 2, "overwrite": True}
    assert "lr: None → 0.0005" in capsys.readouterr().out
    saved = TrainConfig.load(tmp_path / "run")
    assert saved.lr == 5e-4
    ensure_run(_config(style_dir, tmp_path / "run", steps=2, prompt_template="a {}"))
    assert len(calls) == 3  # PROMPT_TEMPLATE too
    # A consumer (notebooks 05, 07) takes the run there is, whatever its settings.
    ensure_run(_config(style_dir, tmp_path / "run", steps=9, lr=1.0), same_settings=False)
    assert len(calls) == 3


def test_interrupted_run_resumes_and_equals_an_uninterrupted_one(style_dir, tmp_path, calls):
    whole = _config(style_dir, tmp_path / "whole")
    ensure_run(whole)

    class Disconnected(Exception):
        pass

    def cut_at_3(step: int, loss: float) -> None:
        if step == 3:
            raise Disconnected

    cut = _config(style_dir, tmp_path / "cut")
    with pytest.raises(Disconnected):
        ensure_run(cut, callback=cut_at_3)
    steps: list[int] = []
    ensure_run(cut, callback=lambda step, loss: steps.append(step))
    assert calls[-1]["resume"] is True
    assert steps == [3, 4, 5, 6]  # from the step-2 checkpoint: one interval redone
    for name in ("spectral_shifts", "learned_embeds"):
        a, b = (
            load_file(r / f"{name}.safetensors") for r in (tmp_path / "whole", tmp_path / "cut")
        )
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    more: list[int] = []
    ensure_run(_config(style_dir, tmp_path / "cut", steps=8), callback=lambda s, _: more.append(s))
    assert more == [7, 8]  # more STEPS extend the finished run
