"""Ctrl-C and ``kill`` during training: finish the step, write a checkpoint, then stop.

A run cut off without a checkpoint is lost. :class:`StopRequests` turns the first SIGINT/SIGTERM
into a request the training loop honours after the current optimizer step (it writes a checkpoint
and raises :class:`TrainingInterrupted`); a second signal stops at once, as usual.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

from svdinst.errors import SvdinstError


class TrainingInterrupted(SvdinstError):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint.

    ``exit_code`` is the shell's convention for the signal (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, signum: int, run: str | Path, step: int, steps: int) -> None:
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        super().__init__(
            f"{name}: training stopped at step {step} of {steps}, checkpoint saved in '{run}'; "
            f"continue it with the same command plus --resume (--out {run})."
        )


class StopRequests:
    """While entered (on the main thread), SIGINT/SIGTERM set :attr:`signum` instead of killing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # asked twice: stop now, without a checkpoint
            self.__exit__()
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this step to save a checkpoint "
              "(press Ctrl-C again to stop at once).", file=sys.stderr)  # fmt: skip

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():  # signal() works only there
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
