"""The course: profiles, the notebook context and the loops notebooks 01–07 share.

A notebook calls ``ctx = setup(PROFILE, WORKDIR)`` and asks the returned :class:`CourseContext`
for everything its profile implies — folders, the inference dtype, ``train_config(mode, seed)``,
``ensure_run``, ``stylize_config()``, ``stylizer(run)``, ``baseline_settings(name)`` — and calls
:func:`train_and_stylize` for the mode × seed loop. :mod:`svdinst.course.settings` holds the
profile → config functions themselves, :mod:`svdinst.course.profiles` the profiles,
:mod:`svdinst.course.explorer` the interactive stylization widget and :mod:`svdinst.course.plots`
the training figures.
"""

from svdinst.course.context import CourseContext
from svdinst.course.notebook import setup
from svdinst.course.outputs import DIFFUSION_METHODS, ensure_diffusion_outputs, train_and_stylize
from svdinst.course.plots import plot_loss_curves, plot_shift_magnitudes
from svdinst.course.profiles import PROFILES, Profile, get_profile
from svdinst.course.settings import (
    BaselineSettings,
    baseline_batch_size,
    profile_baseline_settings,
    profile_run_config,
    profile_stylize_config,
)

__all__ = [
    "DIFFUSION_METHODS",
    "PROFILES",
    "BaselineSettings",
    "CourseContext",
    "Profile",
    "baseline_batch_size",
    "ensure_diffusion_outputs",
    "get_profile",
    "plot_loss_curves",
    "plot_shift_magnitudes",
    "profile_baseline_settings",
    "profile_run_config",
    "profile_stylize_config",
    "setup",
    "train_and_stylize",
]
