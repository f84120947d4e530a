"""RunFolder: file names, settings round trip, completeness check, loss log, run lifecycle."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from svdinst.errors import RunFolderError
from svdinst.formats.checkpoint import list_checkpoints, save_checkpoint
from svdinst.formats.run_folder import LossLog, RunFolder


def test_paths_follow_the_constants(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    assert run.config_path == tmp_path / RunFolder.CONFIG
    assert run.log_path.name == RunFolder.LOG and run.model.name == RunFolder.MODEL
    assert run.spectral_shifts.name == RunFolder.SPECTRAL_SHIFTS
    assert run.checkpoints == tmp_path / "checkpoints"
    assert {RunFolder.CONFIG, RunFolder.LEARNED_EMBEDS} <= set(RunFolder.PRODUCTS)


def test_config_round_trip_and_errors(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    with pytest.raises(RunFolderError, match="does not exist"):
        run.read_config()
    run.path.mkdir()
    with pytest.raises(RunFolderError, match=RunFolder.CONFIG):
        run.read_config()
    run.write_config({"mode": "inst", "model": "tiny"})
    assert run.read_config(required=["mode"]) == {"mode": "inst", "model": "tiny"}
    with pytest.raises(RunFolderError, match="prompt_template"):
        run.read_config(required=["mode", "prompt_template"])
    run.config_path.write_text("{not json")
    with pytest.raises(RunFolderError, match="not valid JSON"):
        run.read_config()


def test_check_names_each_missing_file(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    run.learned_embeds.write_bytes(b"x")
    with pytest.raises(RunFolderError, match="incomplete") as err:
        run.check("svd-inst")
    assert RunFolder.IMAGE_TO_TOKEN in str(err.value) and RunFolder.SPECTRAL_SHIFTS in str(
        err.value
    )
    assert RunFolder.LEARNED_EMBEDS not in str(err.value)
    run.spectral_shifts.write_bytes(b"x")
    run.check("svdiff")  # complete: no error
    with pytest.raises(RunFolderError, match="unknown mode"):
        run.check("lora")


def test_loss_log_truncates_to_the_resumed_step_and_reads_back(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    with pytest.raises(RunFolderError, match="missing"):
        run.read_loss_log()
    log = LossLog(run.log_path, 0)
    for step in (1, 2, 3):
        log.write(step, 1.0 / step, 0.1, step * 0.5)
    log.close()
    LossLog(run.log_path, 2).close()  # resumed at step 2: step 3 is dropped
    assert run.read_loss_log() == {
        "step": [1.0, 2.0], "loss": [1.0, 0.5], "lr": [0.1, 0.1], "seconds": [0.5, 1.0]
    }  # fmt: skip
    with run.log_path.open() as fh:
        assert next(csv.reader(fh)) == ["step", "loss", "lr", "seconds"]


def test_prepare_fresh_resume_overwrite(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    assert run.prepare() == run.path and run.path.is_dir()
    run.write_config({"mode": "inst"})
    run.log_path.write_text("old")
    (run.path / "notes.txt").write_text("mine")
    save_checkpoint(run.path, 5, {"x": torch.zeros(1)})
    with pytest.raises(RunFolderError, match="--overwrite"):
        run.prepare()
    run.prepare(resume=True)  # keeps everything
    assert run.has_config() and run.has_checkpoints()
    run.prepare(overwrite=True)
    assert not run.has_config() and not run.log_path.exists() and not list_checkpoints(run.path)
    assert (run.path / "notes.txt").read_text() == "mine"  # not a run file: kept


def test_digest_follows_the_settings_and_learned_files_not_the_log(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.config_path.write_text('{"mode": "svd-inst"}')
    folder.spectral_shifts.write_bytes(b"delta-1")
    first = folder.digest()
    folder.log_path.write_text("step,loss\n1,0.5\n")
    assert folder.digest() == first  # the log is not what the outputs were made from
    folder.spectral_shifts.write_bytes(b"delta-2")
    assert folder.digest() != first  # retrained weights: earlier outputs are stale
