"""Profiles: what "auto" picks per card, the `course` preset's T4 budget, folder overrides."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

import svdinst.course.profiles as profiles
from svdinst.baselines import get_baseline
from svdinst.course import budget
from svdinst.course.settings import profile_baseline_settings, profile_run_config

COUNTS = {"name", "train_steps", "stylize_seeds", "test_photos", "baseline_steps"}


@pytest.mark.parametrize(
    ("gib", "expected"), [(14.75, "course"), (15.9, "course"), (22.0, "sd14"), (79.1, "sd14")]
)
def test_auto_picks_course_on_a_t4_class_card_and_sd14_on_a_bigger_one(
    monkeypatch, capsys, gib: float, expected: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(profiles, "card_memory_gib", lambda device: gib)
    assert profiles.get_profile("auto").name == expected
    out = capsys.readouterr().out
    assert f"'auto' → '{expected}'" in out and f"{gib:.1f} GiB" in out
    if expected == "course":
        assert "PROFILE='sd14'" in out  # the report's settings are one parameter away


def test_course_differs_from_sd14_only_in_counts() -> None:
    course, sd14 = profiles.PROFILES["course"], profiles.PROFILES["sd14"]
    differ = {
        f.name
        for f in dataclasses.fields(course)
        if getattr(course, f.name) != getattr(sd14, f.name)
    }
    assert differ <= COUNTS, differ - COUNTS
    # sd14 stays the report's full settings
    assert (sd14.train_steps, sd14.stylize_seeds, sd14.test_photos) == (1000, 10, None)
    assert sd14.baseline_steps == 1000 and sd14.quality_claims


def test_course_counts_fit_a_t4_budget_recomputed_from_the_per_unit_times() -> None:
    course = profiles.PROFILES["course"]
    estimate = budget.t4_estimate(course)
    assert budget.over_budget(estimate) == []
    assert max(estimate.values()) <= 30 * 60 and sum(estimate.values()) <= 3 * 3600
    # The arithmetic, once by hand: notebook 04 trains the three modes at the course's steps.
    rate = 1.77 * 4 * 2  # published T4 SD img2img it/s × batch × CFG = UNet evaluations/s
    per_step = sum(
        2.0 * budget.UNITS[f"train {m}"].host_s + budget.TRAIN_EVALS[m] / rate
        for m in ("inst", "svdiff", "svd-inst")
    )
    fixed = 2.0 * 78.132  # notebook 04 on the H200 rehearsal, less its 60 steps per mode
    grid = 4 * (2.0 * 0.55 + (50 * 0.8 * 2 + 4) / rate)
    assert estimate["04"] == pytest.approx(fixed + grid + course.train_steps * per_step)
    # …and the full settings would not fit: the preset is what makes the course possible.
    assert budget.over_budget(budget.t4_estimate(profiles.PROFILES["sd14"]))


def test_a_slower_measurement_breaks_the_budget() -> None:
    slow = {"train svdiff": budget.UnitCost(host_s=3.0, unet_evals=10.0)}
    late = budget.over_budget(budget.t4_estimate(profiles.PROFILES["course"], units=slow))
    assert any(line.startswith("notebook 04") for line in late)


def test_folder_overrides_from_the_environment_reach_the_training_config(
    monkeypatch, tmp_path, capsys
) -> None:
    monkeypatch.setenv(profiles.MODEL_ENV, str(tmp_path / "sd14"))
    monkeypatch.setenv(profiles.IMAGE_ENCODER_ENV, str(tmp_path / "clip"))
    profile = profiles.get_profile("course")
    assert profile.model == str(tmp_path / "sd14")
    assert "from the environment" in capsys.readouterr().out
    config = profile_run_config("inst", tmp_path / "run", profile=profile, style_dir=tmp_path)
    assert config.image_encoder == str(tmp_path / "clip") and config.model == profile.model
    # an explicit override still wins
    assert profiles.get_profile("course", verbose=False, model="x").model == "x"
    monkeypatch.delenv(profiles.MODEL_ENV)
    monkeypatch.delenv(profiles.IMAGE_ENCODER_ENV)
    assert profiles.get_profile("course", verbose=False).image_encoder is None


def test_baseline_steps_auto_come_from_the_profile() -> None:
    cls = get_baseline("adain")
    course = profiles.PROFILES["course"]
    assert profile_baseline_settings(cls, course).steps == course.baseline_steps
    assert profile_baseline_settings(cls, course, gpu_steps=7).steps == 7


def test_profile_overrides_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(profiles.OVERRIDES_ENV, '{"train_steps": 7, "training_seeds": [0, 1]}')
    profile = profiles.get_profile("course", verbose=False)
    assert (profile.train_steps, profile.training_seeds) == (7, (0, 1))
    monkeypatch.setenv(profiles.OVERRIDES_ENV, '{"train_stepz": 7}')
    with pytest.raises(ValueError, match="train_stepz"):
        profiles.get_profile("course", verbose=False)


def test_cpu_threads_one_for_tiny_two_for_pocket_whatever_the_core_count() -> None:
    from svdinst.course.notebook import cpu_threads

    tiny, pocket = profiles.PROFILES["tiny"].resolution, profiles.PROFILES["pocket"].resolution
    assert [cpu_threads(tiny, cpus=c) for c in (1, 2, 16)] == [1, 1, 1]
    # two on every box with two cores or more: the pocket numbers do not change with the box
    assert [cpu_threads(pocket, cpus=c) for c in (1, 2, 16, None)] == [
        1,
        2,
        2,
        min(2, os.cpu_count() or 1),
    ]
