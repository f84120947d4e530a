"""Splitting independent work over the processes of ``accelerate launch``.

``accelerate launch --num_processes N -m svdinst.cli stylize …`` (or ``evaluate``) starts N copies
of the command; each reads its rank from the environment that the launcher (torchrun underneath)
sets, takes every N-th work item and writes its own files. No process talks to another, so the
split needs no process group — and a one-process run is the same code with ``world == 1``.

Items are dealt out *strided* (``items[rank::world]``): with work sorted by photo, every process
gets a similar mix, and each item's result depends only on the item (its own seed), so the images
are bit-identical to a one-process run whatever the split.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TypeVar

from svdinst.errors import SvdinstError

T = TypeVar("T")


def current_process(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(rank, world)`` of this process: from ``RANK``/``WORLD_SIZE`` (set by accelerate and
    torchrun), ``(0, 1)`` when the command was not launched as several processes.

    Args:
        environ (`Mapping[str, str]`, *optional*): the environment to read; ``os.environ`` by default.
    """
    env = os.environ if environ is None else environ
    try:
        rank, world = int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1"))
    except ValueError as err:
        raise SvdinstError(f"RANK / WORLD_SIZE must be integers: {err}") from None
    if world < 1 or not 0 <= rank < world:
        raise SvdinstError(f"RANK={rank} is not a process of WORLD_SIZE={world}")
    return rank, world


def shard(items: Sequence[T], rank: int, world: int) -> list[T]:
    """The items process ``rank`` of ``world`` handles: ``items[rank::world]``.

    Args:
        items (`Sequence`): all work items, in an order every process agrees on.
        rank (`int`): this process, ``0 ≤ rank < world``.
        world (`int`): the number of processes.
    """
    if world < 1 or not 0 <= rank < world:
        raise SvdinstError(f"rank {rank} is not a process of a world of {world}")
    return list(items[rank::world])


def process_device(device: str, environ: Mapping[str, str] | None = None) -> str:
    """This process's device: ``cuda:<LOCAL_RANK>`` when a launcher started several processes
    on one host (accelerate and torchrun set ``LOCAL_RANK``), else ``device`` unchanged.

    Args:
        device (`str`): ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        environ (`Mapping[str, str]`, *optional*): the environment to read; ``os.environ`` by default.
    """
    env = os.environ if environ is None else environ
    if device != "cuda" or "LOCAL_RANK" not in env:
        return device
    return f"cuda:{int(env['LOCAL_RANK'])}"


def use_process_device(device: str) -> str:
    """:func:`process_device`, made torch's current CUDA device, so code that says plain
    ``"cuda"`` (or calls ``.cuda()``) lands on this process's GPU too."""
    device = process_device(device)
    if device.startswith("cuda:"):
        import torch  # here, not at the top: `svdinst --help` imports no torch

        torch.cuda.set_device(device)
    return device
