"""Each file format's names are spelled in exactly one module: its svdinst.formats module.

Everything else in svdinst/ (code, messages, docstrings, --help) names them through the format's
constants, so a renamed file cannot leave a stale spelling behind.
"""

from __future__ import annotations

import re
from pathlib import Path

import svdinst

PACKAGE = Path(svdinst.__file__).parent
# literal → the one module allowed to spell it
LITERALS = {
    r"settings\.json": "formats/outputs.py",
    r"seed-(\d|<|\{|\*)": "formats/outputs.py",  # seed-0.png, seed-<k>, seed-{k}, seed-*
    r"-seed(\d|<|\{)": "formats/outputs.py",  # <method>-seed<k>
    r"(?<![\w/])config\.json": "formats/run_folder.py",
    r"log\.csv": "formats/run_folder.py",
    r"(learned_embeds|image_to_token|spectral_shifts|model)\.safetensors": "formats/run_folder.py",
    r"state\.pt": "formats/checkpoint.py",
    r"step-(\d|N|\{|\*)": "formats/checkpoint.py",
}
# Not the kit's formats: diffusers' own component config inside a model folder.
OTHER_FORMATS = {("models/loading.py", r"(?<![\w/])config\.json")}


def test_format_literals_live_only_in_their_format_module() -> None:
    strays = []
    for file in sorted(PACKAGE.rglob("*.py")):
        rel = file.relative_to(PACKAGE).as_posix()
        for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            for pattern, home in LITERALS.items():
                if rel != home and (rel, pattern) not in OTHER_FORMATS and re.search(pattern, line):
                    strays.append(f"svdinst/{rel}:{n}: {line.strip()}  (belongs to {home})")
    assert not strays, "format literals outside their module:\n" + "\n".join(strays)


def test_each_literal_is_spelled_in_its_home() -> None:
    for pattern, home in LITERALS.items():
        assert re.search(pattern, (PACKAGE / home).read_text(encoding="utf-8")), (pattern, home)
