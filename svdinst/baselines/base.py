"""The one interface every baseline implements, and the registry that finds them by name.

A baseline is trained on two image folders (``content_dir`` photos, ``style_dir`` murals) and
then maps photos to stylized images. Arbitrary-style methods (StyTr², AdaIN, Magenta) also take
style images at inference (``uses_style_at_inference = True``). ``save``/``load`` round-trip a
trained model exactly: ``load(dir).stylize(x)`` equals ``stylize(x)`` before ``save``.

Conventions every method follows (the CLI, notebook 06 and ``tests/test_baselines.py`` rely on
them; the tests run over the whole :data:`REGISTRY`):

- ``config_class`` is a dataclass of the paper's published defaults (full size) with a
  ``resolution: int`` field (training crop size in px) and, for VGG-based methods, a
  ``vgg_weights: str | None`` field (the CLI's ``--vgg-weights FILE``).
- :meth:`Baseline.tiny_config` returns the same architecture with fewer channels for CPU tests
  and the ``tiny`` notebook profile; tests call it with ``resolution=32``.
- ``stylize`` keeps each photo's size. With ``style`` given, arbitrary-style methods stylize
  photo ``i`` with ``style[i % len(style)]``; other methods ignore ``style``.
- ``fit`` returns the total loss of each step it ran; the shared plumbing (image sampling,
  checkpoints, the loss log, progress bar) is :mod:`svdinst.baselines.common`.
- The settings file records two keys beside the config (read by the report's Table I):
  ``backbone`` — the pretrained network the method depends on (:attr:`Baseline.backbone`,
  e.g. ``"tf-fid-inception-trunk (substitute for VGG-19)"``) — and ``train_steps``, the
  optimizer steps the saved network was trained for (``None`` before training).
"""

from __future__ import annotations

import dataclasses
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image
from safetensors.torch import load_file, save_file

from svdinst.baselines.common import resolve_device
from svdinst.errors import SvdinstError
from svdinst.formats.atomic import atomic_path
from svdinst.formats.run_folder import RunFolder

REGISTRY: dict[str, type[Baseline]] = {}


def register(cls: type[Baseline]) -> type[Baseline]:
    """Class decorator: add a baseline to :data:`REGISTRY` under ``cls.name``."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} must set a class attribute `name`.")
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise TypeError(f"Baseline name {cls.name!r} is registered twice.")
    REGISTRY[cls.name] = cls
    return cls


def get_baseline(name: str) -> type[Baseline]:
    """The baseline class registered as ``name``, or a one-line error listing the known names."""
    if name not in REGISTRY:
        raise SvdinstError(
            f"Unknown baseline {name!r}; choose one of: {', '.join(sorted(REGISTRY))}."
        )
    return REGISTRY[name]


class Baseline(ABC):
    """A photo → mural translator with a uniform train / stylize / save / load interface.

    Subclasses set ``name``, ``config_class`` (a dataclass of the paper's published defaults) and
    implement the abstract methods. ``self.config`` holds the dataclass, ``self.device`` the torch
    device string.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    uses_style_at_inference: ClassVar[bool] = False  # arbitrary-style methods take style images
    needs_training: ClassVar[bool] = True  # False for pretrained-only methods (Magenta)

    def __init__(self, config: Any | None = None, device: str = "cpu") -> None:
        self.config = config if config is not None else self.config_class()
        self.device = str(resolve_device(device))  # "auto" → "cuda" when present, else "cpu"
        self.train_steps: int | None = None  # set by whoever trains it; saved with the settings

    @property
    def backbone(self) -> str:
        """The pretrained network the method depends on (``backbone`` in the settings file)."""
        return "none (trained from scratch)"

    @classmethod
    def tiny_config(cls, resolution: int = 64) -> Any:
        """The same architecture with fewer channels, for CPU tests and the ``tiny`` profile.

        Subclasses with wide layers override this; the default is the full config at
        ``resolution``.

        Args:
            resolution (`int`, defaults to 64): training crop size in px.
        """
        return dataclasses.replace(cls.config_class(), resolution=resolution)

    @abstractmethod
    def fit(
        self,
        content_dir: str | os.PathLike,
        style_dir: str | os.PathLike,
        steps: int,
        *,
        out_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 0,
        resume: bool = False,
        seed: int = 0,
    ) -> list[float]:
        """Train for ``steps`` optimizer steps; return the per-step total loss.

        With ``out_dir`` and ``checkpoint_every > 0`` a resumable checkpoint is written atomically
        every ``checkpoint_every`` steps; ``resume=True`` continues from the newest one.
        """

    @abstractmethod
    def stylize(
        self, images: list[Image.Image], style: list[Image.Image] | None = None
    ) -> list[Image.Image]:
        """Map RGB photos to stylized RGB images of the same size (deterministic)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Tensors needed to rebuild the trained translator (for :meth:`save`)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write the settings and the trained network (:class:`RunFolder`) into ``out_dir``."""
        run = RunFolder(out_dir)
        self.save_config(run.path)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        with atomic_path(run.model) as tmp:
            save_file(state, str(tmp))
        return run.path

    @classmethod
    def read_config(cls, run_dir: str | os.PathLike) -> Any:
        """The config dataclass stored in ``run_dir``'s settings file (written by :meth:`save`)."""
        run = RunFolder(run_dir)
        if not run.has_config():
            raise SvdinstError(f"'{run.path}' is not a saved baseline: {run.CONFIG} is missing.")
        saved = run.read_config()
        if saved.pop("baseline", None) != cls.name:
            raise SvdinstError(f"'{run.path}' holds a different baseline, not {cls.name!r}.")
        fields = {f.name for f in dataclasses.fields(cls.config_class)}
        return cls.config_class(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in fields}
        )

    def save_config(self, out_dir: str | os.PathLike) -> Path:
        """Write only the settings file (a run's settings before training finishes)."""
        config = dataclasses.asdict(self.config) if dataclasses.is_dataclass(self.config) else {}
        record = {"baseline": self.name, **config}
        record.update(backbone=self.backbone, train_steps=self.train_steps)
        return RunFolder(out_dir).write_config(record)

    @classmethod
    def load(cls, run_dir: str | os.PathLike, device: str = "cpu") -> Baseline:
        """Rebuild a translator saved by :meth:`save`."""
        run = RunFolder(run_dir)
        config = cls.read_config(run.path)
        if not run.model.exists():
            raise SvdinstError(f"'{run.path}' has no {run.MODEL}: train it, or pick another --run.")
        model = cls(config, device=device)
        # Shipped weights are fp16 (svdinst/weights/baselines-v1): compute in float32.
        state = load_file(run.model, device=model.device)
        model.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        )
        model.train_steps = run.read_config().get("train_steps")
        return model
