"""The full-reproduction estimate: counts of the report's settings, scheduling over GPUs."""

from __future__ import annotations

import pytest

from svdinst.course.reproduction import full_stages, makespan

UNITS = {"train inst": 0.1, "train svdiff": 0.2, "train svd-inst": 0.3, "baselines": 0.5,
         "stylize": 0.15, "metrics": 0.01}  # fmt: skip


def test_full_stages_count_the_reports_settings() -> None:
    stages = {s.name: s for s in full_stages(UNITS)}
    assert stages["train svd-inst, 1000 steps"].seconds == pytest.approx(300.0)
    assert stages["stylize inst, 711 photos × 10 seeds"].units == 7110
    metrics = next(s for n, s in stages.items() if n.startswith("metrics"))
    assert metrics.units == 3 * 7110 + 6 * 711  # 25596, as the rehearsal counted
    assert stages["baselines (all six), 1000 steps"].seconds == pytest.approx(500.0)


def test_makespan_one_gpu_is_the_sum_and_two_gpus_schedule_jobs_and_split_the_rest() -> None:
    stages = full_stages(UNITS)
    total = sum(s.seconds for s in stages)
    assert makespan(stages, 1) == pytest.approx(total)
    split = 3 * 7110 * 0.15 + 25596 * 0.01
    # jobs 500 (baselines), 300, 200, 100 s: longest first → GPU loads 500+100 and 300+200
    assert makespan(stages, 2) == pytest.approx(600 + split / 2)
    measured = makespan(stages, 2, {"stylize": 1.8, "metrics": 1.5})
    assert measured == pytest.approx(600 + 3 * 7110 * 0.15 / 1.8 + 25596 * 0.01 / 1.5)
    with pytest.raises(ValueError, match="gpus"):
        makespan(stages, 0)
