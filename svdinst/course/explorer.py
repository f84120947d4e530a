"""An ipywidgets explorer for stylization that degrades to a static grid when run headless.

In Jupyter or Colab the explorer shows drop-downs and sliders (content photo, seed, strength,
shift scale) and a *Stylize* button — a button rather than live sliders because one image takes
seconds. Run headless (papermill, nbconvert, pytest) there is nobody to move a slider, so the
same knobs are laid out as a static grid instead and nothing waits for input.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from svdinst.captions import knob_caption
from svdinst.figures import add_caption, image_grid
from svdinst.spectral import set_shift_scale

if TYPE_CHECKING:  # the widgets module stays light until a stylizer exists
    from ipywidgets import VBox
    from matplotlib.figure import Figure

    from svdinst.stylize.stylizer import StylizeConfig, Stylizer

HEADLESS_RUNNERS = ("papermill", "nbconvert", "nbclient", "pytest")


def frontend_available() -> bool:
    """Whether a person can interact with widgets in this kernel.

    ``SVDINST_HEADLESS=1`` forces ``False`` (``0`` forces ``True``). Otherwise: ``False`` outside
    an IPython kernel or when the kernel was started by a headless runner (its parent process is
    papermill, nbconvert, nbclient or pytest); ``True`` in Colab and other Jupyter front ends.
    """
    forced = os.environ.get("SVDINST_HEADLESS")
    if forced is not None:
        return forced in ("0", "false", "False")
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return False
    if "google.colab" in sys.modules:
        return True
    try:
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().decode(errors="ignore")
    except OSError:  # not Linux: assume a front end (a static grid is still drawn by the caller)
        return True
    return not any(name in parent for name in HEADLESS_RUNNERS)


def shift_scale_grid(
    stylizer: Stylizer,
    photo: Image.Image,
    config: StylizeConfig,
    scales: Sequence[float] = (0.0, 0.5, 1.0, 1.5),
    seeds: Sequence[int] = (0,),
) -> Figure:
    """Static stand-in for the explorer: one row per seed, one column per shift scale.

    Args:
        stylizer (`Stylizer`): built with ``merge=False`` so the scale can change.
        photo (`PIL.Image.Image`): the content photo.
        config (`StylizeConfig`): strength, steps… of every cell.
        scales (`Sequence[float]`): shift scales s (0 = the base model, 1 = as trained).
        seeds (`Sequence[int]`): rows.
    """
    cells: dict[tuple[int, float], Image.Image] = {}
    try:
        for s in scales:
            set_shift_scale(stylizer.pipe.unet, s)
            for seed, img in zip(seeds, stylizer.stylize(photo, list(seeds), config)):
                cells[(seed, s)] = img
    finally:
        set_shift_scale(stylizer.pipe.unet, stylizer.shift_scale)
    fig = image_grid(
        [cells[(seed, s)] for seed in seeds for s in scales],
        ncols=len(scales),
        titles=[f"shift scale {s:g}" for s in scales],
        row_labels=[f"seed {k}" for k in seeds],
        suptitle=f"{stylizer.mode}: the output against the shift scale s",
        flag_degenerate=True,
    )
    # Said in words when the knob changes the output by less than one grey level (seed 0's row).
    add_caption(fig, knob_caption([cells[(seeds[0], s)] for s in scales], scales, "shift scale"))
    return fig


def stylize_explorer(
    stylizer: Stylizer,
    photos: Mapping[str, Image.Image],
    config: StylizeConfig,
    *,
    max_seed: int = 9,
) -> VBox:
    """Widgets: content photo, seed, strength, shift scale → the stylized image.

    Args:
        stylizer (`Stylizer`): built with ``merge=False`` (the shift scale is a live knob).
        photos (`Mapping[str, PIL.Image]`): name → content photo.
        config (`StylizeConfig`): the other settings (steps, guidance, init…).
        max_seed (`int`, defaults to 9): the seed slider's range is 0…max_seed.

    Returns:
        `ipywidgets.VBox`: display it (the last expression of a cell).
    """
    import ipywidgets as w  # the optional `notebooks` extra; only the explorer needs it

    photo = w.Dropdown(options=list(photos), description="photo")
    seed = w.IntSlider(0, 0, max_seed, description="seed")
    strength = w.FloatSlider(config.strength, min=0.1, max=1.0, step=0.05, description="strength")
    scale = w.FloatSlider(stylizer.shift_scale, min=0.0, max=2.0, step=0.1, description="shift")
    button = w.Button(description="Stylize", button_style="primary")
    view = w.Image(format="png", width=256, height=256)

    def run(_: Any = None) -> None:
        button.disabled = True
        try:
            set_shift_scale(stylizer.pipe.unet, scale.value)
            cfg = replace(config, strength=strength.value)
            img = stylizer.stylize(photos[photo.value], [seed.value], cfg)[0]
            buffer = io.BytesIO()
            img.save(buffer, format="PNG")
            view.value = buffer.getvalue()
        finally:
            button.disabled = False

    button.on_click(run)
    return w.VBox([w.HBox([photo, seed]), w.HBox([strength, scale]), button, view])
