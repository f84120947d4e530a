"""The run-folder lock: one writer per run folder (``RUN/`` + :attr:`RunFolder.LOCK`).

Two ``svdinst train`` into one ``--out`` interleave the loss log and mix one run's settings with
the other's weights. The lock file is created with ``O_CREAT | O_EXCL`` (atomic: exactly one of two
racing processes creates it) and holds the owner's pid, host and start time, so the second writer
can name the first. A lock whose pid is dead on this host is stale (a killed run) and is taken
over with a message; a lock from another host cannot be checked and is respected.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from svdinst.errors import RunFolderError


def _alive(pid: int) -> bool:
    """The process ``pid`` exists on this host (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class RunLock:
    """Hold ``path`` exclusively while a run writes its folder (a context manager).

    Args:
        path (`str` or `os.PathLike`): the lock file (its folder is created).
        command (`str`): what the owner runs, for the second writer's message.
    """

    def __init__(self, path: str | os.PathLike, command: str = "svdinst train") -> None:
        self.path = Path(path)
        self.command = command
        self.held = False
        self.made_folder = False  # a failed fresh start must not leave an empty folder behind

    def _owner(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):  # vanished, or half-written by a racing writer
            return {}

    def acquire(self) -> None:
        """Create the lock file, take over a stale one, or raise :class:`RunFolderError`."""
        self.made_folder = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": self.command}  # fmt: skip
        for _ in range(2):  # a second try after removing a stale lock
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                pid, host = owner.get("pid"), owner.get("host")
                if isinstance(pid, int) and host == me["host"] and not _alive(pid):
                    print(f"svdinst: taking over the stale lock '{self.path}' of pid {pid} "
                          f"(since {owner.get('started')}; no longer running).", file=sys.stderr)  # fmt: skip
                    self.path.unlink(missing_ok=True)
                    continue
                raise RunFolderError(
                    f"Run folder '{self.path.parent}' is in use by {owner.get('command', 'svdinst')}"
                    f" (pid {pid} on {host}, since {owner.get('started')}); wait for it to end or "
                    f"use another --out (if that process is gone, delete '{self.path}')."
                ) from None
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            self.held = True
            return
        raise RunFolderError(f"Could not take the lock '{self.path}'; delete it and retry.")

    def release(self) -> None:
        """Remove the lock file (only when this object holds it), and the folder when this lock
        created it and nothing else was written (a start refused before writing)."""
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
            if self.made_folder and not any(self.path.parent.iterdir()):
                self.path.parent.rmdir()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
