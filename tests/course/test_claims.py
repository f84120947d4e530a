"""No stale text: what the notebooks' markdown and the README claim about the code, checked.

Claims drift when code changes and prose does not (01 once said ``auto`` → ``tiny`` on a CPU
after the code began picking ``pocket``; 05 said strength 0.8 while the pocket profile ran 0.5).
These tests read the prose, pull out every claim of a known shape, and compare it with
:mod:`svdinst.course.profiles` and the kit's own counts.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from svdinst.course import exercises, profiles
from svdinst.course.profiles import PROFILES

REPO = Path(__file__).parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# The profile `make reproduce` runs (and whose executed notebooks are committed).
REPRODUCE = re.search(r"^PROFILE \?= (\w+)$", (REPO / "Makefile").read_text(), re.M).group(1)
REPORT = PROFILES["sd14"]  # the report's protocol: strength 0.8, 10 seeds, 1000 steps


def _markdown(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _units(text: str) -> list[str]:
    """Paragraphs, and each Markdown table row on its own (a row talks about its first cell)."""
    units = []
    for paragraph in re.split(r"\n\s*\n", text):
        rows = [line for line in paragraph.splitlines() if line.startswith("|")]
        units += rows if rows else [paragraph]
    return units


DOCUMENTS = {p.name: _markdown(p) for p in NOTEBOOKS} | {
    "README.md": (REPO / "README.md").read_text()
}


def _named(unit: str) -> list[str]:
    """Profiles a unit names in backticks (a table row: the one in its first cell)."""
    if unit.startswith("|"):
        first = unit.split("|")[1]
        return [n for n in re.findall(r"`([\w-]+)`", first) if n in PROFILES]
    return [n for n in dict.fromkeys(re.findall(r"`([\w-]+)`", unit)) if n in PROFILES]


# ------------------------------------------------------------------------------- PROFILE="auto"


def _auto_picks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """What ``auto`` picks on a T4-sized card, a big card, a CPU with and without pocket."""
    picks = {}
    with_pocket, without = tmp_path / "with", tmp_path / "without"
    with_pocket.mkdir()
    (with_pocket / "model_index.json").write_text("{}")
    cases = {
        "small gpu": ("cuda", 15.0, without),
        "big gpu": ("cuda", 80.0, without),
        "cpu": ("cpu", None, with_pocket),
        "cpu without pocket": ("cpu", None, without),
    }
    for case, (device, gib, folder) in cases.items():
        monkeypatch.setattr(profiles, "default_device", lambda d=device: d)
        monkeypatch.setattr(profiles, "card_memory_gib", lambda device, g=gib: g)
        monkeypatch.setattr(profiles, "pocket_model_path", lambda f=folder: f)
        picks[case] = profiles.auto_profile_name()[0]
    return picks


AUTO = re.compile(r'PROFILE\s*=\s*"auto"|`auto`')


def _auto_claims() -> list[tuple[str, str]]:
    return [(doc, u) for doc, text in DOCUMENTS.items() for u in _units(text) if AUTO.search(u)]


def test_auto_claims_name_what_the_code_picks(monkeypatch, tmp_path) -> None:
    picks = _auto_picks(monkeypatch, tmp_path)
    assert picks == {
        "small gpu": "course",
        "big gpu": "sd14",
        "cpu": "pocket",
        "cpu without pocket": "tiny",
    }, "profiles.auto_profile_name changed: update this test and every claim it checks"
    claims = _auto_claims()
    assert len(claims) >= 8  # the title cells' T4 lines, 01, the README
    for doc, unit in claims:
        named = set(_named(unit))
        where = f"{doc}: {unit[:160]!r}"
        assert named <= set(picks.values()) | {"sd14-random"}, where
        if re.search(r"CUDA|GPU|T4", unit) and not re.search(r"without CUDA", unit):
            assert picks["small gpu"] in named or "pocket" in named, where  # a T4 gets `course`
        if re.search(r"\bCPU\b|without CUDA|otherwise", unit):
            assert picks["cpu"] in named, f"a CPU gets {picks['cpu']!r}, not said in {where}"


def test_the_old_stale_auto_claim_would_fail() -> None:
    stale = (
        '`PROFILE = "auto"` picks **`sd14`** when a CUDA GPU is present and **`tiny`** otherwise.'
    )
    assert AUTO.search(stale) and "course" not in _named(stale) and "pocket" not in _named(stale)


# ------------------------------------------------------------------ a profile's numbers in prose

# Claim shapes: (regex with the number as group "n", the Profile field it states).
FIELD_CLAIMS = [
    (r"strength (?P<n>\d\.\d+)", "strength"),
    (r"(?<!baselines )\b(?P<n>\d[\d,]*) (?:training |CPU )?steps(?! at)", "train_steps"),
    (r"baselines (?P<n>\d+) steps", "baseline_steps"),
    (r"(?P<n>\d+) DDIM steps", "inference_steps"),
    (r"(?<!≥ )(?P<n>\d+) seeds(?! per method)", "stylize_seeds"),  # not training seeds
    (r"(?P<n>\d+) test photos", "test_photos"),
]
# "0.5 on `pocket`", "`pocket` runs 0.5", "`pocket` stylizes at strength 0.5": one profile's value.
ATTRIBUTED = [
    r"(?P<n>\d\.\d+) on `(?P<p>[\w-]+)`",
    r"`(?P<p>[\w-]+)`\s+(?:runs|stylizes\s+at\s+strength)\s+(?P<n>\d\.\d+)",
]


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _stated() -> list[tuple[str, str, str, float, list[str]]]:
    """(document, unit, field, value, profiles it may be about) for every profile-number claim."""
    found = []
    for doc, text in DOCUMENTS.items():
        for unit in _units(text):
            about = _named(unit) + (["sd14"] if re.search(r"report|paper", unit) else [])
            if not about:
                continue  # a number about no profile (InST's 6,100 steps, a lr's effect)
            for pattern, field in FIELD_CLAIMS:
                for m in re.finditer(pattern, unit):
                    found.append((doc, unit, field, _number(m.group("n")), about))
    return found


def test_profile_numbers_in_prose_match_the_profiles() -> None:
    stated = _stated()
    assert {field for _, _, field, _, _ in stated} >= {
        "strength",
        "train_steps",
        "stylize_seeds",
        "test_photos",
        "baseline_steps",
    }
    for doc, unit, field, value, about in stated:
        allowed = {getattr(PROFILES[p], field) for p in about}
        assert value in allowed, (
            f"{doc}: {field} {value} is none of {about}'s {allowed}: {unit[:200]!r}"
        )


def test_attributed_strengths_match_their_profile() -> None:
    found = 0
    for doc, text in DOCUMENTS.items():
        for pattern in ATTRIBUTED:
            for m in re.finditer(pattern, text):
                found += 1
                profile = PROFILES[m.group("p")]
                assert _number(m.group("n")) == profile.strength, f"{doc}: {m.group(0)!r}"
    assert found >= 2


@pytest.mark.parametrize("doc", sorted(DOCUMENTS))
def test_quoting_a_strength_also_says_what_make_reproduce_runs(doc: str) -> None:
    # 05 once said "at the report's strength 0.8" while its executed copy ran pocket's 0.5.
    text = DOCUMENTS[doc]
    quoted = [float(n) for n in re.findall(r"strength (?:of )?(\d\.\d+)", text)]
    if doc == "README.md" or not [q for q in quoted if 0.0 < q < 1.0]:
        return  # strength 1.0 (generation from noise) is a point of the method, not a setting
    strength = PROFILES[REPRODUCE].strength
    said = [m for p in ATTRIBUTED for m in re.finditer(p, text) if m.group("p") == REPRODUCE]
    assert said and all(_number(m.group("n")) == strength for m in said), (
        f"{doc} quotes a strength but not the `{REPRODUCE}` profile's ({strength})"
    )


# -------------------------------------------------------------------------- SD-1.4's counts


def test_sd14_counts_in_prose_are_the_kits() -> None:
    layers, shifts = exercises.sd14_shift_count()
    module = exercises.count_parameters(exercises.ImageToToken(exercises.ImageToTokenConfig()))
    text = "\n".join(DOCUMENTS.values())
    checked = 0
    for m in re.finditer(r"(?P<n>\d{3},\d{3}) (?:numbers|shifts|spectral shifts)", text):
        assert _number(m.group("n")) == shifts, m.group(0)
        checked += 1
    for m in re.finditer(r"(?P<n>\d+) (?:UNet )?layers and", text):
        assert _number(m.group("n")) == layers, m.group(0)
        checked += 1
    for m in re.finditer(r"(?P<n>\d,\d{3},\d{3}) parameters", text):
        assert _number(m.group("n")) == module, m.group(0)
        checked += 1
    assert checked >= 3
    # Notebook 04's table, in millions (one or two decimals as written).
    table = DOCUMENTS["04_joint_training.ipynb"]
    rows = dict(re.findall(r"\| `([\w-]+)` \|[^|]*\| (\d+\.\d+) M \|", table))
    want = {"inst": module, "svdiff": shifts, "svd-inst": module + shifts}
    assert set(rows) == set(want)
    for mode, written in rows.items():
        decimals = len(written.split(".")[1])
        assert float(written) == round(want[mode] / 1e6, decimals), (mode, written)
