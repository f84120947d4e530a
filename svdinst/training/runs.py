"""Use a finished training run: apply it to loaded components (``load_run``), or make it when
missing (``ensure_run``), and read what it learned (``shift_magnitudes``, ``read_loss_log``).

A run folder (:class:`svdinst.formats.run_folder.RunFolder`) holds everything stylizing needs: the
placeholder token's final embedding (for InST modes the image→token module already applied to the
style image, so no CLIP vision tower is needed at inference) and, for the SVDiff modes, the
spectral shifts δ of the UNet. Figures of runs live in :mod:`svdinst.course.plots`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from svdinst.errors import RunFolderError
from svdinst.formats.checkpoint import check_finite, list_checkpoints
from svdinst.formats.run_folder import RunFolder
from svdinst.models.loading import Components
from svdinst.spectral import (
    add_spectral_shifts,
    load_spectral_shifts,
    remove_spectral_shifts,
    set_shift_scale,
)
from svdinst.training.config import (
    RESUMABLE_FIELDS,
    TrainConfig,
    _comparable,  # the one rule for comparing saved settings (also used by --resume)
    read_config_json,
)
from svdinst.training.inversion import load_learned_embeds
from svdinst.training.loop import train


@dataclass
class RunInfo:
    """What :func:`load_run` applied, and what a stylizer needs to build its prompt."""

    run_dir: Path
    mode: str  # "inst", "svdiff" or "svd-inst"
    placeholder_token: str  # e.g. "<mural>"
    prompt_template: str  # e.g. "{}" or "a painting in the style of {}"
    model: str  # the base model the run was trained on
    shift_scale: float  # the style-strength knob applied to δ (1.0 = as trained)
    merged: bool  # True: shifts folded into plain weights (vanilla-SD inference cost)
    config: dict = field(default_factory=dict)  # the run's whole settings file

    @property
    def prompt(self) -> str:
        """The training prompt with the placeholder filled in."""
        return self.prompt_template.format(self.placeholder_token)


def check_run(run_dir: str | os.PathLike) -> dict:
    """Validate a run folder and return its settings (``RunFolderError`` when incomplete or
    when a saved tensor is not finite, naming the file)."""
    config = read_config_json(run_dir)
    folder = RunFolder(run_dir)
    folder.check(config["mode"])
    for name in folder.MODE_FILES[config["mode"]]:  # a NaN run would stylize black images
        check_finite(load_file(folder.path / name), folder.path / name, saving=False)
    return config


def load_run(
    run_dir: str | os.PathLike,
    components: Components,
    shift_scale: float = 1.0,
    merge: bool = True,
) -> RunInfo:
    """Apply a training run to loaded components (in place): token embedding + spectral shifts.

    Args:
        run_dir (`str` or `os.PathLike`): a folder written by :func:`svdinst.training.loop.train`.
        components (`Components`): from :func:`svdinst.models.loading.load_components`, with at least
            ``tokenizer`` and ``text_encoder`` (and ``unet`` for the SVDiff modes).
        shift_scale (`float`, defaults to 1.0): ``s`` in W = U·diag(relu(σ + s·δ))·Vᵀ; 0 gives
            the base UNet, >1 exaggerates the style.
        merge (`bool`, defaults to `True`): fold the shifts into plain weights and remove the
            wrappers and their SVD factors (vanilla-SD memory and speed); keep `False` to change
            ``shift_scale`` later with ``set_shift_scale``.

    Returns:
        `RunInfo`: the run's token, prompt template, mode and base model.
    """
    run = Path(run_dir)
    config = check_run(run)
    if components.tokenizer is None or components.text_encoder is None:
        raise RunFolderError(
            "load_run needs the tokenizer and text encoder: load_components(..., parts=[..., "
            "'tokenizer', 'text_encoder'])."
        )
    token = load_learned_embeds(
        RunFolder(run).learned_embeds, components.tokenizer, components.text_encoder
    )
    merged = False
    if config["mode"] in ("svdiff", "svd-inst"):
        if components.unet is None:
            raise RunFolderError(f"Run '{run}' has spectral shifts: load the 'unet' part too.")
        add_spectral_shifts(
            components.unet,
            include=config.get("shift_include"),
            exclude=config.get("shift_exclude"),
            # lets load_spectral_shifts warn when the run was trained on another base model
            base_model=getattr(components, "model_id", None),
        )
        load_spectral_shifts(components.unet, RunFolder(run).spectral_shifts)
        set_shift_scale(components.unet, shift_scale)
        if merge:  # a plain diffusers UNet again: U, σ, Vᵀ and the wrappers are freed
            remove_spectral_shifts(components.unet, merge=True)
            merged = True
        components.unet.requires_grad_(False)
    return RunInfo(
        run_dir=run,
        mode=config["mode"],
        placeholder_token=token,
        prompt_template=config["prompt_template"],
        model=config["model"],
        shift_scale=shift_scale,
        merged=merged,
        config=config,
    )


def shift_magnitudes(run_dir: str | os.PathLike) -> dict[str, float]:
    """‖δ‖₂ of every layer of a run, largest first — "which layers' shifts moved most"."""
    folder = RunFolder(run_dir)
    path = folder.spectral_shifts
    if not path.exists():
        raise RunFolderError(f"'{folder.path}' has no {folder.SPECTRAL_SHIFTS} (mode inst?).")
    norms = {
        name: float(torch.linalg.vector_norm(d.float())) for name, d in load_file(path).items()
    }
    return dict(sorted(norms.items(), key=lambda kv: -kv[1]))


def read_loss_log(run_dir: str | os.PathLike) -> dict[str, list[float]]:
    """The loss log as columns ``{"step", "loss", "lr", "seconds"}`` (for loss-curve figures)."""
    return RunFolder(run_dir).read_loss_log()


def setting_differences(saved: dict, config: TrainConfig) -> list[str]:
    """``"name: old → new"`` for every training setting of ``config`` that differs from a run's
    saved settings, ignoring :data:`RESUMABLE_FIELDS` except ``steps``."""
    now = config.to_json()
    ignored = set(RESUMABLE_FIELDS) - {"steps"}
    return [
        f"{f.name}: {saved.get(f.name)!r} → {now[f.name]!r}"
        for f in fields(TrainConfig)
        if f.name not in ignored
        and _comparable(f.name, saved.get(f.name)) != _comparable(f.name, now[f.name])
    ]


def _resumable_step(run: Path, steps: int) -> int | None:
    """The step of the newest checkpoint in ``run`` when training can continue from it to
    ``steps``, else ``None``."""
    found = list_checkpoints(run)
    return found[-1][0] if found and found[-1][0] < steps else None


def ensure_run(
    config: TrainConfig,
    make_missing: bool = True,
    same_settings: bool = True,
    **train_kwargs: Any,
) -> Path:
    """Reuse ``config.out`` when it holds the run ``config`` describes, else train it.

    Notebooks call this so a rerun reuses earlier runs, a notebook opened alone on Colab can make
    what it needs, and a run cut off by a disconnect continues where it stopped:

    * finished with the same settings (every field but :data:`RESUMABLE_FIELDS`, steps included):
      reused;
    * the same settings but fewer steps than ``config.steps``, or interrupted: resumed from its
      newest checkpoint (at most one ``checkpoint_every`` interval is redone; the result equals an
      uninterrupted run);
    * other settings (e.g. a changed ``lr`` or ``prompt_template``): the differences are printed
      (old → new) and the run is trained again into ``config.out``, replacing the old one; pass
      another ``out`` to keep both.

    Args:
        config (`TrainConfig`): the run to find or make.
        make_missing (`bool`, defaults to `True`): train when needed; `False` raises
            :class:`RunFolderError` saying why instead.
        same_settings (`bool`, defaults to `True`): `False` reuses any finished run of the same
            mode and model (notebooks 05 and 07 use the runs 03 and 04 made, whatever their
            settings).
        train_kwargs: passed to :func:`svdinst.training.loop.train` (e.g. ``callback``).

    Returns:
        `Path`: the run folder.
    """
    run = Path(config.out)
    folder = RunFolder(run)
    saved, finished = None, False
    try:
        saved = read_config_json(run) if folder.has_config() else None
        finished = saved is not None and check_run(run) is not None
    except RunFolderError:  # incomplete (or an unreadable settings file: saved stays None)
        pass
    same_kind = saved is not None and (saved["mode"], saved["model"]) == (config.mode, config.model)
    if same_kind and not same_settings:
        config = TrainConfig.load(run)  # the run as it was started: reuse or finish it
        config.out = str(run)
    diffs = setting_differences(saved, config) if saved is not None else []
    if finished and not diffs:
        print(f"Reusing the {saved['mode']} run in {run} ({saved.get('steps')} steps).")
        return run
    resume_from = None
    if saved is not None and all(d.startswith("steps:") for d in diffs):
        resume_from = _resumable_step(run, config.steps)
    if resume_from is not None:
        action = (
            f"Resuming the {config.mode} run in {run} from step {resume_from} of {config.steps}"
        )
    elif saved is None:
        action = f"Training a {config.mode} run into {run} ({config.steps} steps)"
    else:
        why = "; ".join(diffs) if diffs else "it is incomplete and has no checkpoint to resume"
        action = f"Training the {config.mode} run in {run} again ({why})"
    if not make_missing:
        raise RunFolderError(
            f"No usable {config.mode} run in '{run}': {action[0].lower()}{action[1:]} is needed. "
            "Run the training notebook first, or set MAKE_MISSING = True to train here."
        )
    print(f"{action}.")
    if resume_from is not None:
        train(config, resume=True, **train_kwargs)
    else:
        train(config, overwrite=True, **train_kwargs)
    return run
