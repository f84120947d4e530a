"""benchmarks/rehearsal.py: the time arithmetic, the injected cells, and the --small run (CPU)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import nbformat
import pytest
import rehearsal

REPO = Path(__file__).parents[2]


def test_step_seconds_is_the_median_gap_of_cumulative_times(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("step,loss,lr,seconds\n1,1,1,5.0\n2,1,1,5.2\n3,1,1,5.4\n4,1,1,6.4\n")
    assert abs(rehearsal.step_seconds(log) - 0.2) < 1e-9  # the 1.0 s outlier does not count
    assert rehearsal.step_seconds(tmp_path / "missing.csv") is None


def test_extrapolation_scales_measured_times_and_estimates_a_t4(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "svd-inst"
    run.mkdir(parents=True)
    (run / "log.csv").write_text("step,loss,lr,seconds\n1,1,1,0.5\n2,1,1,1.0\n3,1,1,1.5\n")
    out = tmp_path / "outputs" / "svd-inst"
    out.mkdir(parents=True)
    (out / "settings.json").write_text(json.dumps({"n_photos": 2, "seeds": 10, "seconds": 40.0}))
    rows = [{"notebook": "05_stylize", "ok": True, "seconds": 50.0,
             "stats": {"device": "NVIDIA H100 80GB HBM3"}}]  # fmt: skip
    args = argparse.Namespace(full_train_steps=1000, full_photos=711, full_seeds=10,
                              baselines=6, baseline_steps=300, full_baseline_steps=1000)  # fmt: skip
    table = rehearsal.extrapolate(tmp_path, rows, args)
    ratio = 989.0 / 65.0
    assert f"× {ratio:.1f}" in table and "estimate" in table
    # 0.5 s/step × 1000 steps = 0.14 h; 2 s/image × 7110 images = 3.95 h
    assert "| train svd-inst, 1000 steps | 0.500 | 1000 | 0.14 h |" in table
    assert f"| 2.000 | 7110 | 3.95 h | {7110 * 2 * ratio / 3600:.2f} h |" in table
    assert f"**{(500 + 14220) / 3600:.2f} h**" in table


def test_instrumented_notebook_has_cap_override_and_stats_cells(tmp_path: Path) -> None:
    src = Path(__file__).parents[2] / "notebooks" / "04_joint_training.ipynb"
    rehearsal.instrument(src, tmp_path / "nb.ipynb", {"train_steps": 7}, cap_gb=15.0)
    cells = [c.source for c in nbformat.read(tmp_path / "nb.ipynb", as_version=4).cells]
    assert "set_per_process_memory_fraction" in cells[0]
    setup = next(i for i, c in enumerate(cells) if "ctx = setup(" in c)
    assert "{'train_steps': 7}" in cells[setup + 1] and rehearsal.MARK in cells[-1]


@pytest.mark.slow
def test_small_rehearsal_runs_a_notebook_and_writes_the_report(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"
    argv = ["--small", "--workdir", str(tmp_path / "wd"), "--write-report", "--report", str(report)]
    assert rehearsal.main(argv) == 0
    text = report.read_text()
    assert "<!-- rehearsal/tiny:begin -->" in text and "| 03_textual_inversion | ok |" in text
    assert "never for quality claims" in text and "| train inst, 1000 steps |" in text
    assert len(list((tmp_path / "wd" / "data" / "test").iterdir())) == 1  # cut to --photos
    assert (tmp_path / "wd" / "executed" / "03_textual_inversion.ipynb").exists()


def test_rows_of_separate_calls_add_up_and_reruns_replace(tmp_path: Path) -> None:
    saved = tmp_path / "rehearsal.json"
    rehearsal.merge_rows(saved, [{"notebook": "03_x", "seconds": 1.0}])
    rehearsal.merge_rows(saved, [{"notebook": "01_x", "seconds": 2.0}])
    rows = rehearsal.merge_rows(saved, [{"notebook": "03_x", "seconds": 3.0}])
    assert [(r["notebook"], r["seconds"]) for r in rows] == [("01_x", 2.0), ("03_x", 3.0)]


def test_make_test_runs_each_notebook_once() -> None:
    # pytest runs 01 (the standalone wheel test) and 03 (the --small rehearsal above); the
    # Makefile's papermill pass after pytest must leave exactly those two out.
    make = (REPO / "Makefile").read_text()
    listed = re.search(r"^NOTEBOOKS_RUN_BY_PYTEST := (.*)$", make, re.M)
    assert listed is not None
    assert "$(filter-out $(NOTEBOOKS_RUN_BY_PYTEST),$(NOTEBOOKS))" in make
    standalone = (REPO / "tests" / "course" / "test_standalone_notebook.py").read_text()
    (by_standalone,) = re.findall(r'^NOTEBOOK = REPO / "notebooks" / "(.*)"$', standalone, re.M)
    (by_rehearsal,) = rehearsal.parse(["--small"]).notebooks
    (rehearsed,) = (REPO / "notebooks").glob(f"{by_rehearsal}_*.ipynb")
    expected = {f"notebooks/{by_standalone}", f"notebooks/{rehearsed.name}"}
    assert set(listed.group(1).split()) == expected
