"""The run-folder format: what a training run leaves in ``RUN/`` and how it is read back.

:class:`RunFolder` names every file (class constants: the *only* place they are spelled), reads
and writes the settings file atomically, checks that a run of a mode is complete, reads the loss
log and prepares a folder for a fresh, resumed or overwritten run. :class:`LossLog` writes the
loss log. Checkpoints live in :attr:`RunFolder.checkpoints` (format: :mod:`svdinst.formats.checkpoint`).

``svdinst train`` writes :attr:`~RunFolder.CONFIG`, :attr:`~RunFolder.LOG`,
:attr:`~RunFolder.LEARNED_EMBEDS` and, by mode, :attr:`~RunFolder.IMAGE_TO_TOKEN` and
:attr:`~RunFolder.SPECTRAL_SHIFTS`; a baseline writes :attr:`~RunFolder.MODEL`; the pocket
pretrainer writes its settings, log and checkpoints the same way.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from svdinst.errors import RunFolderError
from svdinst.formats.atomic import write_json_atomic
from svdinst.formats.checkpoint import checkpoints_dir, list_checkpoints, remove_checkpoints
from svdinst.formats.lock import RunLock

LOG_COLUMNS = ("step", "loss", "lr", "seconds")
TOKEN_NORM = "token_norm"  # svdinst train's extra column: ‖placeholder embedding‖ each step used


class RunFolder:
    """One run folder. File names are class constants; paths are properties.

    Args:
        path (`str` or `os.PathLike`): the folder (need not exist yet).
    """

    CONFIG = "config.json"  # every setting of the run (written first: marks a run folder)
    LOG = "log.csv"  # step, loss, lr, seconds (+ named extras: token_norm, a baseline's terms)
    LEARNED_EMBEDS = "learned_embeds.safetensors"  # the placeholder's final embedding
    IMAGE_TO_TOKEN = "image_to_token.safetensors"  # InST's image→token module
    SPECTRAL_SHIFTS = "spectral_shifts.safetensors"  # SVDiff's δ of the UNet
    MODEL = "model.safetensors"  # a baseline's trained network
    LOCK = "train.lock"  # pid, host, start of the one process writing the folder (formats.lock)
    # What a finished `svdinst train` run of each mode must hold (besides CONFIG).
    MODE_FILES: ClassVar[dict[str, tuple[str, ...]]] = {
        "inst": (LEARNED_EMBEDS, IMAGE_TO_TOKEN),
        "svdiff": (LEARNED_EMBEDS, SPECTRAL_SHIFTS),
        "svd-inst": (LEARNED_EMBEDS, IMAGE_TO_TOKEN, SPECTRAL_SHIFTS),
    }
    # Everything a run writes besides checkpoints/ (removed when a run is overwritten).
    PRODUCTS = (CONFIG, LOG, LEARNED_EMBEDS, IMAGE_TO_TOKEN, SPECTRAL_SHIFTS, MODEL)

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder('{self.path}')"

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def log_path(self) -> Path:
        return self.path / self.LOG

    @property
    def learned_embeds(self) -> Path:
        return self.path / self.LEARNED_EMBEDS

    @property
    def image_to_token(self) -> Path:
        return self.path / self.IMAGE_TO_TOKEN

    @property
    def spectral_shifts(self) -> Path:
        return self.path / self.SPECTRAL_SHIFTS

    @property
    def model(self) -> Path:
        return self.path / self.MODEL

    @property
    def lock_path(self) -> Path:
        return self.path / self.LOCK

    def lock(self, command: str = "svdinst train") -> RunLock:
        """The folder's write lock (a context manager; see :mod:`svdinst.formats.lock`)."""
        return RunLock(self.lock_path, command)

    @property
    def checkpoints(self) -> Path:
        """``RUN/checkpoints`` (see :mod:`svdinst.formats.checkpoint`)."""
        return checkpoints_dir(self.path)

    def has_config(self) -> bool:
        return self.config_path.is_file()

    def has_checkpoints(self) -> bool:
        return bool(list_checkpoints(self.path))

    # ------------------------------------------------------------------ settings

    def write_config(self, data: dict[str, Any], *, sort_keys: bool = False) -> Path:
        """Write the settings file atomically (creating the folder)."""
        return write_json_atomic(self.config_path, data, sort_keys=sort_keys)

    def read_config(self, required: Sequence[str] = ()) -> dict[str, Any]:
        """The settings file as a dict, or a :class:`RunFolderError` that says what to do.

        Args:
            required (`Sequence[str]`, *optional*): keys the file must hold.
        """
        if not self.path.is_dir():
            raise RunFolderError(
                f"Run folder '{self.path}' does not exist; train one with "
                f"`svdinst train ... --out {self.path}`."
            )
        if not self.config_path.is_file():
            raise RunFolderError(
                f"'{self.path}' has no {self.CONFIG}, so it is not a (finished) svdinst run "
                "folder; train into it with `svdinst train` or pass another --run."
            )
        try:
            data = json.loads(self.config_path.read_text())
        except json.JSONDecodeError as err:
            raise RunFolderError(
                f"'{self.config_path}' is not valid JSON ({err}); re-run training."
            ) from err
        missing = [k for k in required if k not in data]
        if missing:
            raise RunFolderError(
                f"'{self.config_path}' lacks the keys {missing}; it was not written by svdinst."
            )
        return data

    def check(self, mode: str) -> None:
        """Raise a :class:`RunFolderError` naming each file a finished ``mode`` run lacks."""
        if mode not in self.MODE_FILES:
            raise RunFolderError(f"'{self.config_path}' names an unknown mode {mode!r}.")
        missing = [name for name in self.MODE_FILES[mode] if not (self.path / name).exists()]
        if missing:
            raise RunFolderError(
                f"Run folder '{self.path}' is incomplete: {', '.join(missing)} missing (training "
                f"was interrupted?). Continue it with `svdinst train ... --out {self.path} "
                "--resume`."
            )

    # ------------------------------------------------------------------ loss log

    def digest(self) -> str:
        """A short hash of the settings and learned files: outputs made from a run that was
        since retrained (same folder, new weights) are not mistaken for current ones."""
        h = hashlib.sha256()
        for name in (self.CONFIG, self.LEARNED_EMBEDS, self.IMAGE_TO_TOKEN, self.SPECTRAL_SHIFTS):
            path = self.path / name
            if path.is_file():  # each file once (MODE_FILES lists the shared ones per mode)
                h.update(name.encode() + path.read_bytes())
        return h.hexdigest()[:16]

    def read_loss_log(self) -> dict[str, list[float]]:
        """The loss log as columns ``{"step", "loss", "lr", "seconds", <extras>…}``.

        Extra columns (e.g. ``svdinst train``'s ``token_norm``) are read when the file has them;
        a log written before they existed simply lacks those keys.
        """
        if not self.log_path.is_file():
            raise RunFolderError(f"'{self.log_path}' is missing; the run has not trained a step.")
        with self.log_path.open() as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            names = [*LOG_COLUMNS, *(c for c in reader.fieldnames or () if c not in LOG_COLUMNS)]
        return {k: [float(r[k]) for r in rows] for k in names}

    # ------------------------------------------------------------------ lifecycle

    def clear(self) -> None:
        """Delete the checkpoints and every file a run writes (other files are kept)."""
        remove_checkpoints(self.path)
        for name in self.PRODUCTS:
            (self.path / name).unlink(missing_ok=True)

    def continue_hint(self, mode: str | None = None) -> str:
        """The one command that continues the run in this folder, whatever state it is in."""
        out = f"--out {self.path}"
        found = list_checkpoints(self.path)
        finished = mode in self.MODE_FILES and all(
            (self.path / name).exists() for name in self.MODE_FILES[mode]
        )
        if finished:
            return ("it is finished: extend it with the same command plus --resume and a larger "
                    "--steps, replace it with --overwrite, or use another --out")  # fmt: skip
        if found:
            return (f"it stopped at checkpoint step {found[-1][0]}: continue it with the same "
                    f"command plus --resume ({out}), or start over with --overwrite")  # fmt: skip
        return ("it has no checkpoint to continue from: start it over with the same command plus "
                "--overwrite (without --resume), or use another --out")  # fmt: skip

    def check_start(self, *, resume: bool = False, overwrite: bool = False) -> None:
        """Refuse a start that cannot work, before anything is loaded or deleted.

        A fresh run refuses a folder that already holds a run (its settings file); ``resume``
        needs a checkpoint. Each message names the one command that continues the folder.
        """
        mode = None
        if self.has_config():
            with contextlib.suppress(RunFolderError):
                mode = self.read_config().get("mode")
        if resume and not self.has_checkpoints():
            if not self.has_config():
                raise RunFolderError(
                    f"--resume: '{self.path}' holds no run yet; start it with the same command "
                    "without --resume."
                )
            raise RunFolderError(f"--resume: run folder '{self.path}': {self.continue_hint(mode)}.")
        if not resume and not overwrite and self.has_config():
            raise RunFolderError(
                f"Run folder '{self.path}' already holds a run; {self.continue_hint(mode)}."
            )

    def prepare(self, *, resume: bool = False, overwrite: bool = False) -> Path:
        """Create the folder for a fresh, resumed or overwritten run (after :meth:`check_start`).

        ``overwrite`` deletes the old run's checkpoints and files so none of them outlive it; call
        it only once the new run's settings, model and data were validated, so a mistyped setting
        never costs the old run. ``resume`` keeps everything (the caller checks the settings).

        Returns:
            `Path`: the folder.
        """
        self.check_start(resume=resume, overwrite=overwrite)
        if overwrite and not resume:
            self.clear()
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path


class LossLog:
    """The loss log (step, loss, lr, seconds, extras), truncated to the resumed step, flushed
    each row.

    Args:
        path (`str` or `os.PathLike`): usually :attr:`RunFolder.log_path`.
        start (`int`): the step a resumed run starts from; rows after it are dropped (0: fresh).
        extra (`Sequence[str]`, *optional*): named columns after the four fixed ones, each given
            to :meth:`write` by keyword (``svdinst train`` logs ``token_norm``).
    """

    def __init__(self, path: str | os.PathLike, start: int, extra: Sequence[str] = ()) -> None:
        path = Path(path)
        self.extra = tuple(extra)
        rows = []
        if start and path.exists():
            with path.open() as fh:
                rows = [r for r in csv.reader(fh)][1:]
            rows = [r for r in rows if int(r[0]) <= start]
        header = [*LOG_COLUMNS, *self.extra]
        rows = [r + ["nan"] * (len(header) - len(r)) for r in rows]  # a log from before a column
        self.fh = path.open("w", newline="")
        self.writer = csv.writer(self.fh)
        self.writer.writerow(header)
        self.writer.writerows(rows)
        self.fh.flush()

    def write(self, step: int, loss: float, lr: float, seconds: float, **extra: float) -> None:
        if set(extra) != set(self.extra):
            raise ValueError(f"LossLog.write needs exactly the columns {self.extra}, got {extra}.")
        values = [f"{extra[name]:.6g}" for name in self.extra]
        self.writer.writerow([step, f"{loss:.6g}", f"{lr:.6g}", f"{seconds:.3f}", *values])
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()
