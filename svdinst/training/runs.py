"""Apply a finished training run to loaded components: ``load_run``.

A run folder (DESIGN.md contract) holds everything stylizing needs: the placeholder token's final
embedding (``learned_embeds.safetensors`` — for InST modes the image→token module already applied
to the style image, so no CLIP vision tower is needed at inference) and, for the SVDiff modes, the
spectral shifts δ of the UNet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from svdinst.errors import RunFolderError
from svdinst.training.config import read_config_json

REQUIRED_FILES = {
    "inst": ("learned_embeds.safetensors", "image_to_token.safetensors"),
    "svdiff": ("learned_embeds.safetensors", "spectral_shifts.safetensors"),
    "svd-inst": (
        "learned_embeds.safetensors",
        "image_to_token.safetensors",
        "spectral_shifts.safetensors",
    ),
}


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
    config: dict = field(default_factory=dict)  # the whole config.json

    @property
    def prompt(self) -> str:
        """The training prompt with the placeholder filled in."""
        return self.prompt_template.format(self.placeholder_token)


def check_run(run_dir: str | os.PathLike) -> dict:
    """Validate a run folder and return its ``config.json`` (``RunFolderError`` when incomplete)."""
    run = Path(run_dir)
    config = read_config_json(run)
    mode = config["mode"]
    if mode not in REQUIRED_FILES:
        raise RunFolderError(f"'{run / 'config.json'}' names an unknown mode {mode!r}.")
    missing = [name for name in REQUIRED_FILES[mode] if not (run / name).exists()]
    if missing:
        raise RunFolderError(
            f"Run folder '{run}' is incomplete: {', '.join(missing)} missing (training was "
            f"interrupted?). Continue it with `svdinst train ... --out {run} --resume`."
        )
    return config


def load_run(
    run_dir: str | os.PathLike,
    components: Any,
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
        merge (`bool`, defaults to `True`): fold the shifts into plain weights (fast inference);
            keep `False` to change ``shift_scale`` later with ``set_shift_scale``.

    Returns:
        `RunInfo`: the run's token, prompt template, mode and base model.
    """
    from svdinst.training.inversion import load_learned_embeds

    run = Path(run_dir)
    config = check_run(run)
    if components.tokenizer is None or components.text_encoder is None:
        raise RunFolderError(
            "load_run needs the tokenizer and text encoder: load_components(..., parts=[..., "
            "'tokenizer', 'text_encoder'])."
        )
    token = load_learned_embeds(
        run / "learned_embeds.safetensors", components.tokenizer, components.text_encoder
    )
    merged = False
    if config["mode"] in ("svdiff", "svd-inst"):
        if components.unet is None:
            raise RunFolderError(f"Run '{run}' has spectral shifts: load the 'unet' part too.")
        from svdinst.spectral.layer import (
            add_spectral_shifts,
            load_spectral_shifts,
            merge_spectral_shifts,
            set_shift_scale,
        )

        add_spectral_shifts(
            components.unet,
            include=config.get("shift_include"),
            exclude=config.get("shift_exclude"),
            # lets load_spectral_shifts warn when the run was trained on another base model
            base_model=getattr(components, "model_id", None),
        )
        load_spectral_shifts(components.unet, run / "spectral_shifts.safetensors")
        set_shift_scale(components.unet, shift_scale)
        if merge:
            merge_spectral_shifts(components.unet)
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
    from safetensors.torch import load_file

    run = Path(run_dir)
    path = run / "spectral_shifts.safetensors"
    if not path.exists():
        raise RunFolderError(f"'{run}' has no spectral_shifts.safetensors (mode inst?).")
    norms = {
        name: float(torch.linalg.vector_norm(d.float())) for name, d in load_file(path).items()
    }
    return dict(sorted(norms.items(), key=lambda kv: -kv[1]))


def read_loss_log(run_dir: str | os.PathLike) -> dict[str, list[float]]:
    """``log.csv`` as columns ``{"step", "loss", "lr", "seconds"}`` (for loss-curve figures)."""
    import csv

    path = Path(run_dir) / "log.csv"
    if not path.exists():
        raise RunFolderError(f"'{path}' is missing; the run has not trained a step yet.")
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    return {k: [float(r[k]) for r in rows] for k in ("step", "loss", "lr", "seconds")}


def ensure_run(config: Any, make_missing: bool = True, **train_kwargs: Any) -> Path:
    """Reuse ``config.out`` when it holds a finished run of the same mode and model, else train.

    Notebooks call this so a rerun (``make reproduce``) reuses earlier runs and a notebook opened
    alone on Colab can make what it needs.

    Args:
        config (`TrainConfig`): the run to find or make.
        make_missing (`bool`, defaults to `True`): train when the run is missing, incomplete or of
            another mode/model; `False` raises :class:`RunFolderError` instead.
        train_kwargs: passed to :func:`svdinst.training.loop.train` (e.g. ``callback``).

    Returns:
        `Path`: the run folder.
    """
    run = Path(config.out)
    try:
        saved = check_run(run)
        if saved["mode"] == config.mode and saved["model"] == config.model:
            print(f"Reusing the {saved['mode']} run in {run} ({saved.get('steps')} steps).")
            return run
        why = f"it holds a {saved['mode']} run of {saved['model']}"
    except RunFolderError as err:
        why = str(err)
    if not make_missing:
        raise RunFolderError(
            f"No usable {config.mode} run in '{run}' ({why}). Run the training notebook first, "
            "or set MAKE_MISSING = True to train a short one here."
        )
    from svdinst.training.loop import train

    print(f"Training a {config.mode} run into {run} ({config.steps} steps).")
    train(config, overwrite=True, **train_kwargs)
    return run


def plot_loss_curves(runs: dict[str, str | os.PathLike], smooth: int = 10) -> Any:
    """One figure with the loss of several runs (raw, faint) and a running mean (bold).

    Args:
        runs (`dict[str, path]`): label → run folder.
        smooth (`int`, defaults to 10): window of the running mean (steps).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for i, (label, run) in enumerate(runs.items()):
        log = read_loss_log(run)
        steps, loss = np.array(log["step"]), np.array(log["loss"])
        color = f"C{i}"
        ax.plot(steps, loss, color=color, alpha=0.25, lw=0.8)
        if len(loss) >= smooth:
            mean = np.convolve(loss, np.ones(smooth) / smooth, mode="valid")
            ax.plot(
                steps[smooth - 1 :], mean, color=color, lw=2, label=f"{label} ({smooth}-step mean)"
            )
        else:
            ax.plot(steps, loss, color=color, lw=2, label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("noise-prediction MSE")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_shift_magnitudes(run_dir: str | os.PathLike, top: int = 15) -> Any:
    """Bar chart of the ``top`` layers with the largest ‖δ‖₂, coloured by UNet part."""
    import matplotlib.pyplot as plt

    norms = list(shift_magnitudes(run_dir).items())[:top]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(norms) + 1.2))
    parts = ("down_blocks", "mid_block", "up_blocks")
    colors = [f"C{next((i for i, p in enumerate(parts) if n.startswith(p)), 3)}" for n, _ in norms]
    ax.barh(range(len(norms)), [v for _, v in norms], color=colors)
    ax.set_yticks(range(len(norms)), [n for n, _ in norms], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("‖δ‖₂ (blue: down, orange: mid, green: up, red: other)")
    fig.tight_layout()
    return fig
