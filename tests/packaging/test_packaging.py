"""Packaging: pyproject pins, environment.yml for conda users, and the console script."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import svdinst

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")

REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def requirements(pyproject: dict) -> dict[str, Requirement]:
    reqs = [Requirement(r) for r in pyproject["project"]["dependencies"]]
    return {r.name.lower(): r for r in reqs}


def test_pins(requirements: dict[str, Requirement]) -> None:
    # metrics.py converts Inception weights into torch-fidelity 0.4.0's state-dict layout.
    assert str(requirements["torch-fidelity"].specifier) == "==0.4.0"
    # torch stays a range so Colab's preinstalled CUDA build is reused, never replaced.
    torch_spec = requirements["torch"].specifier
    assert torch_spec and not any(s.operator in ("==", "===") for s in torch_spec)
    assert "2.14.1" in torch_spec  # the version this kit's CPU machines install


def test_versions_agree(pyproject: dict) -> None:
    # One setting names where the notebooks install from (tools/nbscaffold.py writes it into
    # their badges and install cells; tests/course/test_notebooks.py checks every notebook).
    assert pyproject["project"]["version"] == svdinst.__version__
    setting = pyproject["tool"]["svdinst"]
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", setting["repository"])
    assert setting["tag"].format(version=svdinst.__version__)
    scaffold = (REPO / "tools" / "nbscaffold.py").read_text()
    assert "svdinst/svdinst" not in scaffold and "v0." not in scaffold  # nothing hard-coded there


# The lowest version of each package that the code needs, and why; pyproject's floors must not
# be lower (a fresh Colab keeps any preinstalled version that satisfies the floor).
FLOORS = {
    # torch.is_autocast_enabled(device_type) (svdinst/spectral/fast.py) takes a device from 2.4.
    "torch": ("2.4", "is_autocast_enabled(device_type)"),
    # the torchvision release paired with torch 2.4 (its weights API fetches LPIPS/VGG backbones).
    "torchvision": ("0.19", "pairs with torch 2.4"),
    # resize_token_embeddings(mean_resizing=False) (svdinst/training/inversion.py) came in 4.46.
    "transformers": ("4.46", "resize_token_embeddings(mean_resizing=...)"),
    # UNet blocks checkpoint under torch.is_grad_enabled() from 0.32; before, only in train
    # mode, and the kit trains with the UNet in eval mode (checkpointing silently off → OOM).
    "diffusers": ("0.32", "gradient checkpointing in eval mode"),
}


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_floors_cover_what_the_code_needs(requirements: dict[str, Requirement], name: str) -> None:
    need, why = FLOORS[name]
    spec = requirements[name].specifier
    floors = [s.version for s in spec if s.operator in (">=", "==", "~=")]
    assert floors, f"{name} has no lower bound in pyproject.toml; it needs >={need} ({why})"
    assert all(Version(f) >= Version(need) for f in floors), (
        f"pyproject.toml lets {name} {spec} install; the code needs >={need} ({why})"
    )


def test_colab_extra_is_what_colab_lacks(pyproject: dict, requirements) -> None:
    extras = pyproject["project"]["optional-dependencies"]
    colab = [Requirement(r) for r in extras["colab"]]
    jupyter = {"jupyterlab", "notebook", "ipykernel", "ipywidgets", "papermill", "nbformat"}
    assert not {r.name.lower() for r in colab} & jupyter, "Colab's own Jupyter stack must stay"
    assert not any(r.name.lower() == "torch" for r in colab)  # Colab's CUDA torch is reused
    for req in colab:  # the same requirement as the base list: the two cannot drift apart
        assert req.name.lower() in requirements, f"{req} is not a dependency of the kit"
        assert req.specifier == requirements[req.name.lower()].specifier, req


def test_environment_yml_installs_this_package(pyproject: dict) -> None:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert "pip" in [re.split(r"[=<>]", d)[0] for d in conda]

    # A Python version that pyproject's requires-python accepts.
    (python,) = [d for d in conda if re.split(r"[=<>]", d)[0] == "python"]
    version = python.split("=")[-1]
    requires = SpecifierSet(pyproject["project"]["requires-python"])
    assert requires.contains(version), f"environment.yml {python} vs requires-python {requires}"

    # The package itself with the notebooks extra: pyproject stays the one list of dependencies.
    (pip,) = pip_lists
    local = [p for p in pip if re.match(r"^(-e\s+)?\.(\[|$)", p)]
    assert local, f"environment.yml must pip-install this folder, got {pip}"
    extras = set(re.findall(r"\[([^\]]*)\]", local[0])[0].split(",")) if "[" in local[0] else set()
    assert "notebooks" in {e.strip() for e in extras}
    assert {e.strip() for e in extras} <= set(pyproject["project"]["optional-dependencies"])
    # Anything else listed must not contradict pyproject (same names only, no extra packages).
    declared = {Requirement(r).name.lower() for r in pyproject["project"]["dependencies"]}
    for entry in [*conda, *(p for p in pip if p not in local)]:
        name = re.split(r"[=<>\[ ]", entry)[0].lower()
        assert name in declared | {"python", "pip"}, f"{entry} is not a pyproject dependency"


def _svdinst_commands() -> list[list[str]]:
    commands = [[sys.executable, "-m", "svdinst.cli"]]
    script = shutil.which("svdinst", path=str(Path(sys.executable).parent))
    if script:
        commands.append([script])
    return commands


@pytest.mark.parametrize("command", _svdinst_commands(), ids=lambda c: Path(c[0]).name)
def test_version_command(command: list[str]) -> None:
    result = subprocess.run([*command, "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"svdinst {svdinst.__version__}"


HELP_PROBE = """
import sys, traceback
class Probe:  # records the svdinst import chain that first loads each heavy package
    def find_spec(self, name, path=None, target=None):
        if name in HEAVY and name not in sys.modules and name not in chains:
            frames = traceback.extract_stack()
            chains[name] = " -> ".join(
                f"{f.filename.rpartition('svdinst/')[2]}:{f.lineno}"
                for f in frames if "/svdinst/" in f.filename
            )
HEAVY, chains = ("torch", "diffusers", "transformers"), {}
sys.meta_path.insert(0, Probe())
import svdinst.cli
svdinst.cli.build_parser().format_help()
print(chains)
"""


def test_help_imports_no_torch() -> None:
    # `svdinst --help` must stay quick (torch alone takes seconds to import): each command
    # module's register_cli builds its parser without the heavy packages.
    out = subprocess.run(
        [sys.executable, "-c", HELP_PROBE], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "{}", f"svdinst --help imports: {out.stdout.strip()}"
