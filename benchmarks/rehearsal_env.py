"""The rehearsal's Colab-like surroundings: the wheel in a fresh environment, the hub-layout model
folders, and a notebook kernel that is capped and reports its peaks (benchmarks/rehearsal.py).

A notebook must see only what a Colab user has: the installed svdinst wheel and the preinstalled
stack (torch, transformers…), never this checkout. :func:`make_env` therefore creates
``python -m venv --system-site-packages ENV``, installs the wheel there with ``pip --no-index
--no-deps``, and lists in a ``.pth`` file every ``sys.path`` folder of the harness except those
holding an ``svdinst`` package (so wheels staged in ``.site/`` on the offline device stay visible,
and a venv made from another venv still sees its packages). The kernel is a kernelspec of that
environment whose ``env`` puts :data:`SITECUSTOMIZE` first on ``PYTHONPATH``: in the kernel process
only, it caps CUDA memory with ``set_per_process_memory_fraction`` before any notebook code runs
and, at exit, writes the peak allocated/reserved GiB, the kernel's peak RSS (``VmHWM``) and its
children's (``RUSAGE_CHILDREN``) to ``REHEARSAL_STATS``. The notebooks are not edited.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

KERNEL = "svdinst-rehearsal"
SITECUSTOMIZE = '''"""benchmarks/rehearsal.py: cap and measure the notebook kernel (no other process)."""
import atexit
import json
import os
import resource
import sys


def _status_gib(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 2**20
    return None


if "ipykernel_launcher" in " ".join(getattr(sys, "orig_argv", sys.argv)):
    import torch

    _CAP = float(os.environ["REHEARSAL_CAP_GIB"])
    _CUDA = torch.cuda.is_available()
    if _CUDA:
        _TOTAL = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, _CAP * 2**30 / _TOTAL), 0)

    def _report():
        kit = sys.modules.get("svdinst")
        stats = {
            "device": torch.cuda.get_device_name(0) if _CUDA else "cpu",
            "cap_gib": _CAP if _CUDA else None,
            "allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if _CUDA else None,
            "reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if _CUDA else None,
            "rss_gib": _status_gib("VmHWM"),
            "children_rss_gib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20,
            "svdinst": getattr(kit, "__file__", None),
            "torch": torch.__version__,
        }
        with open(os.environ["REHEARSAL_STATS"], "w") as fh:
            json.dump(stats, fh)

    atexit.register(_report)
'''


def build_wheel(repo: Path, out: Path) -> Path:
    """``pip wheel --no-deps`` of a clean copy of the checkout (no build/ left behind).

    ``--no-build-isolation``: the offline device cannot fetch setuptools into an isolated
    build environment; the interpreter's own setuptools builds it.
    """
    src = out / "src"
    shutil.rmtree(src, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(repo / "svdinst", src / "svdinst", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)], check=True
    )
    shutil.rmtree(src)
    return max(out.glob("svdinst-*.whl"), key=lambda p: p.stat().st_mtime)


def _inherited_paths() -> list[str]:
    """The harness's import folders minus any that hold an ``svdinst`` package (the checkout)."""
    keep, here = [], Path(__file__).resolve().parent  # benchmarks/ is no Colab folder either
    for entry in sys.path:
        path = Path(entry or ".").resolve()
        if path.is_dir() and path != here and not (path / "svdinst" / "__init__.py").exists():
            keep.append(str(path))
    return list(dict.fromkeys(keep))


def make_env(work: Path, wheel: Path, cap_gib: float) -> Path:
    """A fresh environment with ``wheel`` installed and the capped kernelspec; its python.

    Args:
        work (`Path`): the rehearsal folder (``env/``, ``inject/``, ``jupyter/`` go there).
        wheel (`Path`): the svdinst wheel.
        cap_gib (`float`): the kernel's CUDA memory cap (a Colab T4: 14.0 leaves the context room).
    """
    env = work / "env"
    python = env / "bin" / "python"
    if not python.exists():
        # --without-pip: a base interpreter without ensurepip (Debian's) can still make it; the
        # harness's own pip installs into it below.
        venv = [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env)]
        subprocess.run(venv, check=True)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "rehearsal_inherited.pth").write_text("\n".join(_inherited_paths()) + "\n")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "install"]
    install = ["--no-index", "--no-deps", "--upgrade", "--target", purelib, str(wheel)]
    subprocess.run([*pip, *install], check=True)
    inject = work / "inject"
    inject.mkdir(parents=True, exist_ok=True)
    (inject / "sitecustomize.py").write_text(SITECUSTOMIZE)
    spec = work / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    kernel = {
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "svdinst rehearsal (wheel only)",
        "language": "python",
        "env": {"PYTHONPATH": str(inject), "REHEARSAL_CAP_GIB": str(cap_gib)},
    }
    (spec / "kernel.json").write_text(json.dumps(kernel, indent=1))
    return python


def build_models(work: Path, small: bool) -> tuple[Path, Path]:
    """The hub-layout model and vision folders (tiny sizes for ``--small``), built once."""
    from svdinst.models.layouts import SDLayoutConfig, build_hub_layout_model

    model, vision = (
        work / "models" / "stable-diffusion-v1-4",
        work / "models" / "clip-vit-large-patch14",
    )
    if not (model / "model_index.json").exists() or not (vision / "config.json").exists():
        config = SDLayoutConfig.tiny() if small else SDLayoutConfig.sd14()
        build_hub_layout_model(model, vision, config)
    return model, vision


def folder_gib(*folders: Path) -> float:
    """Bytes under ``folders`` in GiB (files only; links not followed)."""
    total = 0
    for folder in folders:
        if folder.exists():
            total += sum(
                p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
            )
    return total / 2**30
