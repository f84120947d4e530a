"""Resumable training for the baselines: checkpoints of stateful objects and the generic fit loop.

Re-exported by :mod:`svdinst.baselines.common`, where method files import them from.

- :func:`checkpoint_objects` / :func:`restore_objects` — the kit's one checkpoint format
  (:mod:`svdinst.formats.checkpoint`: atomic, fsynced, every RNG state) holding the
  ``state_dict()`` of each net, optimizer, scheduler, sampler and image pool; every checkpoint is
  kept. :func:`svdinst.formats.checkpoint.latest_checkpoint` finds the newest.
- :func:`fit_loop` — resume, tqdm bar, the loss log, periodic checkpoints.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from svdinst.errors import RunFolderError, SvdinstError
from svdinst.formats.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from svdinst.formats.run_folder import RunFolder


class Stateful(Protocol):
    """What a checkpoint holds: nets, optimizers, schedulers, samplers, image pools."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


def checkpoint_objects(
    run_dir: str | os.PathLike,
    step: int,
    objects: Mapping[str, Stateful],
    extra: Mapping | None = None,
) -> Path:
    """Write a checkpoint of ``objects`` at ``step`` (every checkpoint is kept).

    Args:
        run_dir: the run folder.
        step (`int`): optimizer steps completed.
        objects: name → anything with ``state_dict()`` (nets, optimizers, schedulers, samplers,
            image pools).
        extra (*optional*): more picklable values to keep (e.g. the loss history).

    Returns:
        `Path`: the checkpoint folder.
    """
    state = {
        "objects": {k: v.state_dict() for k, v in objects.items()},
        "extra": dict(extra or {}),
    }
    return save_checkpoint(run_dir, step, state, keep=None)


def restore_objects(path: str | os.PathLike, objects: Mapping[str, Stateful]) -> dict[str, Any]:
    """Restore ``objects`` (and the global RNG states) from a :func:`checkpoint_objects` folder.

    Returns:
        `dict`: ``{"step": int, "extra": dict}``.
    """
    state = load_checkpoint(path)
    missing = set(objects) - set(state.get("objects", {}))
    if missing:
        raise RunFolderError(
            f"Checkpoint '{path}' lacks {sorted(missing)}: it is from another baseline or "
            "setting; start a fresh run (another --out) instead of --resume."
        )
    for name, obj in objects.items():
        obj.load_state_dict(state["objects"][name])
    set_rng_state(state["rng"])
    return {"step": int(state["step"]), "extra": state["extra"]}


# ----------------------------------------------------------------------------- the loop


def fit_loop(
    step_fn: Callable[[int], Mapping[str, float]],
    steps: int,
    *,
    objects: Mapping[str, Stateful],
    out_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    desc: str = "train",
    lr_fn: Callable[[], float] | None = None,
) -> list[float]:
    """Run ``step_fn(step)`` for steps ``start … steps-1`` with a progress bar; return the losses.

    ``step_fn`` does one optimizer step and returns named floats, including ``"loss"`` (the
    total). With ``out_dir``, every step is appended to its loss log (step, loss, lr,
    seconds, then the named terms); with ``checkpoint_every > 0`` a checkpoint of ``objects`` is
    written every that many steps and at the end. ``resume=True`` first restores the newest
    checkpoint (RNG states included), so a resumed run continues exactly where it stopped.

    Args:
        step_fn: one training step.
        steps (`int`): total steps of the run (a resumed run stops at the same total).
        objects: everything with a state (see :func:`checkpoint_objects`).
        out_dir (*optional*): the run folder (:class:`RunFolder`) for the log and checkpoints.
        checkpoint_every (`int`, defaults to 0): 0 writes no checkpoints.
        resume (`bool`, defaults to `False`): continue from the newest checkpoint.
        desc (`str`): progress-bar label.
        lr_fn (*optional*): returns the current learning rate for the log.

    Returns:
        `list[float]`: the total loss of every step run by this call.
    """
    if steps < 1:  # 0 steps would save an untrained network that stylize then uses
        raise SvdinstError(f"--steps must be ≥ 1 (0 would save an untrained model), got {steps}.")
    if (checkpoint_every or resume) and out_dir is None:
        raise ValueError("Checkpoints and --resume need an output folder (out_dir).")
    start = 0
    if resume:
        ckpt = latest_checkpoint(out_dir)
        if ckpt is None:
            print(f"No checkpoint in '{out_dir}' yet: starting from step 0.")
        else:
            start = restore_objects(ckpt, objects)["step"]
            for obj in objects.values():
                _refresh_lambda_lr(obj)
            print(f"Resumed from {ckpt} (step {start} of {steps}).")
    log_file = RunFolder(out_dir).log_path if out_dir is not None else None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        if start == 0 and log_file.exists():
            log_file.unlink()
    losses: list[float] = []
    t0 = time.perf_counter()
    writer_fields: list[str] | None = None
    bar = tqdm(range(start, steps), desc=desc, initial=start, total=steps, leave=False)
    deadline = _DEADLINE
    for step in bar:
        terms = {k: float(v) for k, v in step_fn(step).items()}
        if "loss" not in terms:
            raise KeyError("step_fn must return a 'loss' entry (the total loss).")
        losses.append(terms["loss"])
        bar.set_postfix(loss=f"{terms['loss']:.4f}")
        if log_file is not None:
            row = {
                "step": step + 1,
                "loss": terms["loss"],
                "lr": lr_fn() if lr_fn else float("nan"),
                "seconds": round(time.perf_counter() - t0, 3),
            }
            row.update({k: v for k, v in terms.items() if k != "loss"})
            new = not log_file.exists()
            writer_fields = writer_fields or list(row)
            with log_file.open("a", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=writer_fields, extrasaction="ignore")
                if new:
                    writer.writeheader()
                writer.writerow(row)
        done = step + 1
        late = deadline is not None and time.monotonic() > deadline
        if checkpoint_every and (done % checkpoint_every == 0 or done == steps or late):
            checkpoint_objects(out_dir, done, objects, extra={"desc": desc})
        if late and done < steps:
            print(f"{desc}: time limit reached after {done} of {steps} steps; stopping.")
            break
    bar.close()
    return losses


_DEADLINE: float | None = None  # time.monotonic() after which fit_loop stops (time_limit)


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Stop every :func:`fit_loop` inside the block after ``seconds`` (a safety for fixed
    GPU budgets, e.g. ``benchmarks/train_baselines.py``): the loop ends after the step that
    crosses the limit and returns the losses so far, so the caller sees how many steps ran.

    Args:
        seconds (`float`, *optional*): wall-clock seconds from now; `None` = no limit.
    """
    global _DEADLINE
    previous = _DEADLINE
    _DEADLINE = None if seconds is None else time.monotonic() + float(seconds)
    try:
        yield
    finally:
        _DEADLINE = previous


def _refresh_lambda_lr(scheduler: Any) -> None:
    """Re-apply a ``LambdaLR``'s *current* factor after a resume: the optimizer state restores
    the learning rate of the checkpointed run, whose ``--steps`` total may have been shorter."""
    if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
        lrs = [
            base * fn(scheduler.last_epoch)
            for fn, base in zip(scheduler.lr_lambdas, scheduler.base_lrs, strict=True)
        ]
        for group, lr in zip(scheduler.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        scheduler._last_lr = lrs
