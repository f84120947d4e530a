"""Pocket-scale baselines: budgets scaled from the papers, shipped fp16 runs, the time limit, and
the check that outputs are images (not the black frames and grey noise of 2-step training)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from svdinst.baselines.pocket_scale import (
    PAPER_ITERATIONS,
    SCALE,
    SHIPPED_MB_CAP,
    budget_table,
    pocket_config,
    pocket_steps,
)
from svdinst.baselines.registry import get_baseline
from svdinst.baselines.shipped import (
    degenerate_reason,
    export_shipped,
    shipped_root,
    shipped_run,
    state_megabytes,
)
from svdinst.baselines.stytr2 import stytr2_lr
from svdinst.baselines.training import time_limit
from svdinst.formats.checksums import verify_checksums, write_checksums
from svdinst.formats.run_folder import RunFolder

TRAINED = tuple(PAPER_ITERATIONS)


def test_budgets_are_the_papers_iterations_scaled():
    assert set(TRAINED) == {"adain", "stytr2", "fast_style", "cyclegan", "stargan", "balagan"}
    assert pocket_steps("adain") == 1600 and pocket_steps("fast_style") == 400
    assert pocket_steps("cyclegan") == round(200 * 1334 * SCALE)
    rows = {r["method"]: r for r in budget_table()}
    assert all(r["pocket_steps"] == round(r["paper_iterations"] * SCALE) for r in rows.values())
    assert rows["balagan"]["batch_size"] == 16 and rows["cyclegan"]["batch_size"] == 1


def test_step_schedules_keep_the_papers_shape():
    adain_paper, adain = get_baseline("adain").config_class(), pocket_config(get_baseline("adain"))
    # lr at the end of the pocket run == lr at the end of the paper's run (inverse decay).
    end = adain.lr / (1 + adain.lr_decay * pocket_steps("adain"))
    assert end == pytest.approx(adain_paper.lr / (1 + adain_paper.lr_decay * 160_000))
    paper, ours = get_baseline("stytr2").config_class(), pocket_config(get_baseline("stytr2"))
    assert ours.warmup_steps == 100
    assert stytr2_lr(ours, 100) == pytest.approx(stytr2_lr(paper, 10_000))
    assert stytr2_lr(ours, 1600) == pytest.approx(stytr2_lr(paper, 160_000))
    assert ours.resolution == adain.resolution == 128


def test_shipped_networks_fit_the_size_cap():
    sizes = {name: state_megabytes(get_baseline(name)(pocket_config(get_baseline(name))))
             for name in TRAINED}  # fmt: skip
    assert sum(sizes.values()) <= SHIPPED_MB_CAP, sizes
    assert min(sizes.values()) > 0.5  # real networks, not stubs


def test_degenerate_outputs_are_named():
    from svdinst.data.default import PHOTOS, _source_image
    from svdinst.data.mural import mural_proxy

    black = Image.new("RGB", (64, 64))
    assert "flat" in degenerate_reason(black)
    noise = np.random.default_rng(0).integers(60, 200, (64, 64, 3), dtype=np.uint8)
    assert "noise" in degenerate_reason(Image.fromarray(noise))
    photo = _source_image(PHOTOS[0]).resize((128, 128))
    assert degenerate_reason(photo) is None
    assert degenerate_reason(mural_proxy(photo)) is None


def test_time_limit_stops_after_the_crossing_step(tmp_path):
    from svdinst.baselines.training import fit_loop

    with time_limit(0.0):
        losses = fit_loop(lambda step: {"loss": float(step)}, 50, objects={})
    assert losses == [0.0]
    assert fit_loop(lambda step: {"loss": 1.0}, 3, objects={}) == [1.0, 1.0, 1.0]  # no limit


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from svdinst.data import prepare_default_dataset

    return prepare_default_dataset(tmp_path_factory.mktemp("data"), max_side=96)


@pytest.mark.parametrize("name", ["fast_style", "adain", "cyclegan"])
def test_short_cpu_training_lowers_the_loss(data, name):
    cls = get_baseline(name)
    config = cls.tiny_config(32)
    if name != "cyclegan":  # CycleGAN's paper batch is 1; the others: 4 steadies the curve
        config = dataclasses.replace(config, batch_size=4)
    losses = cls(config).fit(data / "content", data / "style", 16, seed=0)
    assert np.mean(losses[-4:]) < np.mean(losses[:4]), losses


def test_short_cpu_training_lowers_stargans_generator_loss(data):
    cls = get_baseline("stargan")
    model = cls(cls.tiny_config(32))
    losses = model.fit(data / "content", data / "style", 20, seed=0)
    generator_steps = losses[model.config.n_critic - 1 :: model.config.n_critic]  # G + D terms
    assert len(generator_steps) == 4 and generator_steps[-1] < generator_steps[0], losses


def test_shipped_run_round_trips_in_fp16(data, tmp_path):
    cls = get_baseline("fast_style")
    model = cls(cls.tiny_config(32))
    run = tmp_path / "run"
    model.fit(data / "content", data / "style", 2, out_dir=run)
    model.train_steps = 2
    root = tmp_path / "baselines-v1"
    export_shipped(model, run, root, "# card\n")
    write_checksums(root)
    assert verify_checksums(root) == []
    assert shipped_run("fast_style", root) == root / "fast_style"
    assert shipped_run("adain", root) is None
    saved = RunFolder(root / "fast_style").read_config()
    assert saved["backbone"].startswith("tf-fid-inception-trunk") and saved["train_steps"] == 2
    loaded = cls.load(root / "fast_style")
    assert loaded.train_steps == 2
    photo = [Image.open(sorted((data / "test").iterdir())[0]).convert("RGB").resize((32, 32))]
    a = np.asarray(model.stylize(photo)[0], dtype=float)
    b = np.asarray(loaded.stylize(photo)[0], dtype=float)
    assert np.abs(a - b).mean() < 2.0  # fp16 weights: within a couple of grey levels


def test_pocket_profile_loads_shipped_weights(monkeypatch, tmp_path):
    from svdinst.course import settings as course_settings
    from svdinst.course.profiles import PROFILES

    monkeypatch.setattr(course_settings, "shipped_run", lambda name: tmp_path / name)
    cls = get_baseline("adain")
    pocket = course_settings.profile_baseline_settings(cls, PROFILES["pocket"])
    assert pocket.shipped == str(tmp_path / "adain")
    assert "shipped" not in pocket.as_kwargs()
    assert course_settings.profile_baseline_settings(cls, PROFILES["tiny"]).shipped is None


@pytest.mark.skipif(
    not shipped_root().is_dir(),
    reason="no shipped baselines yet: benchmarks/train_baselines.py writes them on a GPU",
)
@pytest.mark.parametrize("name", TRAINED)
def test_shipped_baselines_output_images_not_black_or_noise(data, name):
    assert verify_checksums(shipped_root()) == []
    model = get_baseline(name).load(shipped_run(name))
    photos = [
        Image.open(p).convert("RGB").resize((96, 96)) for p in sorted((data / "test").iterdir())
    ]
    style = [Image.open(p).convert("RGB") for p in sorted((data / "style").iterdir())]
    for image in model.stylize(photos, style):
        assert degenerate_reason(image) is None
    with torch.no_grad():
        assert model.train_steps and model.train_steps > 2


def test_cli_size_pocket_is_the_shipped_runs_config():
    from svdinst.baselines.cli import build_config
    from svdinst.errors import SvdinstError

    cls = get_baseline("stytr2")
    assert build_config(cls, size="pocket") == pocket_config(cls)
    assert build_config(cls, size="pocket", resolution=64).resolution == 64
    with pytest.raises(SvdinstError, match="not trained at pocket scale"):
        build_config(get_baseline("magenta"), size="pocket")
