"""How many CPU threads the ``svdinst`` command gives torch.

torch's default is one thread per core, so two commands at once on a 2-core box (two trainings,
or a training beside a notebook kernel) fight over the cores: OpenMP's spinning workers took a
tiny-model step from 0.11 s to 11–15 s. The rule (:func:`thread_count`):

1. ``SVDINST_THREADS`` when set (the kit's own knob), else
2. ``OMP_NUM_THREADS`` when set (the usual knob, respected as torch itself does), else
3. half the cores, at least 1 and at most 4: a second run (or the kernel) keeps the other half,
   and beyond 4 threads the tiny and pocket models gain little on a CPU. A GPU run hardly uses
   the CPU threads, so the cap costs it nothing.

:func:`apply_threads` is called once by ``svdinst/cli.py:main`` before a command runs. It imports
no torch (``svdinst --help`` stays quick): before torch is imported it sets ``OMP_NUM_THREADS``,
which torch reads when it starts; after, it calls ``torch.set_num_threads``.
"""

from __future__ import annotations

import os
import sys

from svdinst.errors import SvdinstError

ENV = "SVDINST_THREADS"  # the kit's own setting; wins over OMP_NUM_THREADS
MAX_DEFAULT = 4  # the default never takes more than this many threads


def thread_count(environ: dict[str, str] | None = None, cpus: int | None = None) -> int:
    """The number of threads for this process (the rule in the module docstring).

    Args:
        environ (`dict`, *optional*): the environment; defaults to ``os.environ``.
        cpus (`int`, *optional*): the core count; defaults to ``os.cpu_count()``.
    """
    env = os.environ if environ is None else environ
    for name in (ENV, "OMP_NUM_THREADS"):
        value = env.get(name, "").strip()
        if value:
            if not value.isdigit() or int(value) < 1:
                raise SvdinstError(f"{name}={value!r}: set a whole number of threads ≥ 1.")
            return int(value)
    cores = cpus if cpus is not None else (os.cpu_count() or 1)
    return max(1, min(MAX_DEFAULT, cores // 2))


def apply_threads() -> int:
    """Give torch :func:`thread_count` threads (before or after torch is imported); returns it."""
    n = thread_count()
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    else:  # read by torch (and NumPy's BLAS) when they start: no torch import for `--help`
        os.environ["OMP_NUM_THREADS"] = str(n)
    return n
