"""Where a notebook's work lives on Colab: Google Drive when asked (or mounted), else /content.

A Colab runtime's disk (``/content``) is wiped when it disconnects (idle ~90 min, at most ~12 h),
and every notebook opened from its badge gets a fresh runtime. Data, runs and outputs therefore
belong on Google Drive. The notebooks' Drive cell calls :func:`colab_workdir` only on Colab
(``"google.colab" in sys.modules``); elsewhere ``WORKDIR`` is used as given.
"""

from __future__ import annotations

import os
from pathlib import Path

from svdinst.errors import SvdinstError

DRIVE_MOUNT = Path("/content/drive")  # where Colab's drive.mount puts Google Drive
DRIVE_WORKDIR = DRIVE_MOUNT / "MyDrive" / "svdinst"  # the default WORKDIR with Drive
LOCAL_WORKDIR = Path("/content/svdinst")  # the default WORKDIR without Drive (wiped on disconnect)
DEFAULT_WORKDIR = "."  # the parameters cell's default: "let the notebook choose"


def drive_mounted() -> bool:
    """Whether Google Drive is mounted (by an earlier cell or the Files pane)."""
    return (DRIVE_MOUNT / "MyDrive").is_dir()


def mount_drive() -> None:
    """Mount Google Drive at :data:`DRIVE_MOUNT` (Colab asks the learner for access once)."""
    from google.colab import drive  # exists only on Colab

    try:
        drive.mount(str(DRIVE_MOUNT))
    except Exception as err:  # declined access, timeout: Colab raises plain exceptions for both
        raise SvdinstError(
            f"Google Drive was not mounted ({type(err).__name__}: {err}). Allow access when "
            f"Colab asks, or set USE_DRIVE = False to work in {LOCAL_WORKDIR} (wiped on disconnect)."
        ) from err


def _on_drive(path: Path) -> bool:
    return path == DRIVE_MOUNT or DRIVE_MOUNT in path.parents


def colab_workdir(workdir: str | os.PathLike = DEFAULT_WORKDIR, use_drive: bool = False) -> str:
    """Choose ``WORKDIR`` on Colab, mounting Google Drive when asked.

    Args:
        workdir (`str` or `os.PathLike`, defaults to ``"."``): the notebook's ``WORKDIR``. The
            default ``"."`` means "choose": :data:`DRIVE_WORKDIR` when Drive is mounted (or
            ``use_drive``), else :data:`LOCAL_WORKDIR`. Any other value is kept; one under
            ``/content/drive`` mounts Drive first.
        use_drive (`bool`, defaults to `False`): mount Google Drive (the ``USE_DRIVE`` parameter).

    Returns:
        `str`: the folder to pass to :func:`svdinst.course.notebook.setup`.
    """
    given = Path(workdir).expanduser()
    if (use_drive or _on_drive(given)) and not drive_mounted():
        mount_drive()
    if str(workdir) != DEFAULT_WORKDIR:
        chosen = given
    else:
        chosen = DRIVE_WORKDIR if drive_mounted() else LOCAL_WORKDIR
    if _on_drive(chosen):
        print(f"WORKDIR {chosen} is on Google Drive: data, runs and outputs survive a disconnect.")
    else:
        print(
            f"Warning: WORKDIR {chosen} is on the Colab runtime's disk, which is wiped when it "
            "disconnects (idle ~90 min, at most ~12 h). Set USE_DRIVE = True to keep your work "
            "on Google Drive."
        )
    return str(chosen)
