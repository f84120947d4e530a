"""benchmarks/rehearsal.py: the T4 arithmetic, the kernel injection, and the --small run (CPU)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import rehearsal
import rehearsal_env

from svdinst.course import budget
from svdinst.course.profiles import PROFILES

REPO = Path(__file__).parents[2]


def test_step_seconds_is_the_median_gap_of_cumulative_times(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("step,loss,lr,seconds\n1,1,1,5.0\n2,1,1,5.2\n3,1,1,5.4\n4,1,1,6.4\n")
    assert abs(rehearsal.step_seconds(log) - 0.2) < 1e-9  # the 1.0 s outlier does not count
    assert rehearsal.step_seconds(tmp_path / "missing.csv") is None


def _fake_rehearsal(work: Path) -> list[dict]:
    """A work folder as two notebooks of a rehearsal leave it: 03 trained inst, 05 stylized."""
    run = work / "workdir" / "runs" / "inst"
    run.mkdir(parents=True)
    (run / "log.csv").write_text("step,loss,lr,seconds\n1,1,1,0.5\n2,1,1,1.0\n3,1,1,1.5\n")
    out = work / "workdir" / "outputs" / "inst"
    out.mkdir(parents=True)
    (out / "settings.json").write_text(json.dumps({"n_photos": 2, "seeds": 10, "seconds": 40.0}))
    (work / "workdir" / "data" / "test").mkdir(parents=True)
    stats = {"device": "NVIDIA H200", "allocated_gib": 5.0, "reserved_gib": 6.0, "rss_gib": 3.0,
             "children_rss_gib": 0.1}  # fmt: skip
    row = {"ok": True, "error": None, "stats": stats, "disk_workdir": 1.0, "disk_caches": 2.0}
    return [
        {**row, "notebook": "03_textual_inversion", "seconds": 30.0, "did": {"train inst": 3}},
        {**row, "notebook": "05_stylize", "seconds": 100.0, "did": {"stylize inst": 20}},
    ]


def test_units_measured_here_replace_the_budgets_and_calibrate_the_t4_ratio(tmp_path) -> None:
    rows = _fake_rehearsal(tmp_path)
    args = rehearsal.parse(["--train-steps", "3", "--seeds", "10"])
    units = rehearsal.measured_units(tmp_path, rows, args)
    assert units["train inst"].host_s == pytest.approx(0.5)  # median step gap of log.csv
    assert units["stylize inst"].host_s == pytest.approx(2.0)  # 40 s / (2 photos × 10 seeds)
    assert units["fixed 03"].host_s == pytest.approx(30.0 - 3 * 0.5)  # wall minus the steps
    assert units["fixed 05"].host_s == pytest.approx(100.0 - 20 * 2.0)
    ratio, text = rehearsal.card_to_t4(units)
    t4_image = 80 / (1.77 * 4 * 2)  # published T4 rate: 40 denoising steps × CFG per image
    assert ratio == pytest.approx(t4_image / 2.0) and "T4 (batch size: 4)" in text
    table = rehearsal.report(tmp_path, rows, args)
    expected = budget.t4_estimate(PROFILES["course"], units, ratio)["05"] / 60
    row_05 = next(line for line in table.splitlines() if line.startswith("| 05_stylize |"))
    assert "| 5.00 | 6.00 | 3.00 (+ 0.10) | 1.00 / 2.00 |" in row_05
    assert row_05.endswith(f"| {expected:.1f} |")  # 05 at the course preset's counts
    assert "NVIDIA H200" in table and "never for quality claims" in table


def test_the_injected_sitecustomize_reports_only_from_a_kernel(tmp_path: Path) -> None:
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(rehearsal_env.SITECUSTOMIZE)
    env = {**os.environ, "PYTHONPATH": str(inject), "REHEARSAL_CAP_GIB": "14.0",
           "REHEARSAL_STATS": str(tmp_path / "stats.json")}  # fmt: skip
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    assert not (tmp_path / "stats.json").exists()  # pip, papermill…: untouched
    subprocess.run([sys.executable, "-m", "ipykernel_launcher", "--help"], env=env,
                   check=True, capture_output=True)  # fmt: skip
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["rss_gib"] > 0 and stats["device"] == "cpu" and stats["reserved_gib"] is None


def test_the_environment_never_sees_the_checkout() -> None:
    paths = rehearsal_env._inherited_paths()
    assert str(REPO) not in paths and any("site-packages" in p for p in paths)


@pytest.mark.slow
def test_small_rehearsal_runs_a_standalone_notebook_and_writes_the_report(tmp_path) -> None:
    report, work = tmp_path / "benchmarks.md", tmp_path / "wd"
    argv = [
        "--small",
        "--solved",
        "--workdir",
        str(work),
        "--write-report",
        "--report",
        str(report),
    ]
    assert rehearsal.main(argv) == 0  # --solved: fails unless every exercise check printed ✅
    text = report.read_text()
    assert "<!-- rehearsal/tiny:begin -->" in text and "| 03_textual_inversion | ok |" in text
    assert "never for quality claims" in text and "| train inst |" in text
    stats = json.loads((work / "stats" / "03.json").read_text())
    assert stats["svdinst"].startswith(str(work / "env"))  # the installed wheel, not the repo
    index = json.loads((work / "models" / "stable-diffusion-v1-4" / "model_index.json").read_text())
    assert index["safety_checker"] == [None, None]
    # the notebook ran alone in its folder; WORKDIR (data, runs) lives elsewhere
    assert {p.name for p in (work / "nb" / "03").iterdir()} >= {"executed.ipynb"}
    assert rehearsal.solutions_tool().verify(work / "nb" / "03" / "executed.ipynb") == []
    assert (work / "workdir" / "runs" / "inst" / "log.csv").exists()


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
