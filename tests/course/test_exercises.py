"""The notebooks' exercises: templates, solutions, and checks that pass right answers only.

CI runs the *solved* notebooks (``make test``: ``SOLVED=1``; pytest's runs of 01 and 03), and
``tools/solutions.py verify`` fails unless every check printed ✅. Here every check is called
with the unsolved ``...`` (it must fail), with a right answer computed independently of the
kit's own function (it must pass) and with a typical wrong one (it must fail, with its hint).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from scipy import linalg

from svdinst.course import exercises, exercises_eval, grading

REPO = Path(__file__).parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHECKS = {**exercises.CHECKS, **exercises_eval.CHECKS}


def _tool():
    """tools/solutions.py (a dev tool outside the package), imported from its file."""
    spec = importlib.util.spec_from_file_location("solutions", REPO / "tools" / "solutions.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tool = _tool()


def _check_calls(nb: nbformat.NotebookNode) -> dict[str, str]:
    """``{answer variable: check function name}`` over the notebook's check cells."""
    calls = {}
    for cell in nb.cells:
        if cell.cell_type != "code" or "check" not in cell.metadata.get("tags", []):
            continue
        for node in ast.walk(ast.parse(cell.source)):
            func = getattr(node, "func", None)
            if isinstance(node, ast.Call) and getattr(func, "attr", "").startswith("check_"):
                calls[ast.unparse(node.args[0])] = func.attr
    return calls


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_notebook_has_two_exercises_each_followed_by_its_check(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    cells = tool.exercise_cells(nb)
    assert len(cells) >= 2, f"{path.name}: fewer than two exercises"
    assert all(i.startswith(path.name[:2]) for i in cells), sorted(cells)
    calls = _check_calls(nb)
    for exercise_id, cell in cells.items():
        # The unsolved template, exactly: a learner opens the notebook with nothing solved.
        assert tool.is_template(cell.source, exercise_id), f"{path.name} {exercise_id}"
        name = calls.get(tool.answer_name(exercise_id))
        assert name is not None, f"{path.name}: no check cell reads {tool.answer_name(exercise_id)}"
        check = getattr(exercises, name, None) or getattr(exercises_eval, name)
        assert check.exercise_id == exercise_id
        # The check comes after the exercise, in a later cell.
        position = nb.cells.index(cell)
        later = [c.source for c in nb.cells[position + 1 :]]
        assert any(name in source for source in later)


def test_is_template_rejects_a_solution() -> None:
    assert tool.is_template("# say something\nanswer_02a = ...  # YOUR CODE HERE", "02-a")
    assert not tool.is_template("answer_02a = 222_696", "02-a")
    assert not tool.is_template("x = 1\nanswer_02a = ...", "02-a")
    assert not tool.is_template("answer_02b = ...", "02-a")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_solve_replaces_every_exercise_by_its_solution(path: Path, tmp_path: Path) -> None:
    solved = nbformat.read(tool.solve(path, tmp_path), as_version=4)
    sections = tool.read_solutions(tool.SOLUTIONS / f"{path.stem}.py")
    for exercise_id, cell in tool.exercise_cells(solved).items():
        assert cell.source == sections[exercise_id]
        assert not tool.is_template(cell.source, exercise_id)
    # Everything but the exercise cells is the notebook itself.
    original = nbformat.read(path, as_version=4)
    kept = [c.source for c in original.cells if "exercise" not in c.metadata.get("tags", [])]
    assert kept == [c.source for c in solved.cells if "exercise" not in c.metadata.get("tags", [])]


def test_solve_refuses_a_missing_solution(tmp_path: Path) -> None:
    (tmp_path / "sol").mkdir()
    (tmp_path / "sol" / f"{NOTEBOOKS[0].stem}.py").write_text(
        "# %% exercise-01-a\nanswer_01a = 1\n"
    )
    with pytest.raises(SystemExit, match="must match one to one"):
        tool.solve(NOTEBOOKS[0], tmp_path / "out", tmp_path / "sol")


def _executed(lines: list[str], ids: list[str]) -> dict:
    nb = nbformat.v4.new_notebook()
    for i in ids:
        nb.cells.append(
            nbformat.v4.new_code_cell(
                f"answer_{i} = ...", metadata={"tags": ["exercise", f"exercise-{i}"]}
            )
        )
    cell = nbformat.v4.new_code_cell("check()")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="\n".join(lines) + "\n")]
    nb.cells.append(cell)
    return json.loads(nbformat.writes(nb))


def test_verify_needs_a_pass_line_per_exercise_and_no_fail(tmp_path: Path) -> None:
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(_executed(["✅ 01-a: fine", "✅ 01-b: fine"], ["01-a", "01-b"])))
    assert tool.verify(path) == []
    path.write_text(
        json.dumps(_executed(["✅ 01-a: fine", "❌ 01-b: no. Hint: h"], ["01-a", "01-b"]))
    )
    problems = tool.verify(path)
    assert any("❌ 01-b" in p for p in problems) and any(
        "01-b printed no ✅" in p for p in problems
    )
    path.write_text(json.dumps(_executed(["✅ 01-a: fine"], ["01-a", "01-b"])))
    assert tool.verify(path) == ["x.ipynb: exercise 01-b printed no ✅ line"]


# ------------------------------------------------------------------------------ the checks


def test_every_notebook_check_is_known_and_fails_unsolved(capsys) -> None:
    used = {
        c for path in NOTEBOOKS for c in _check_calls(nbformat.read(path, as_version=4)).values()
    }
    known = {check.__name__ for check in CHECKS.values()}
    assert used == known
    for exercise_id, check in CHECKS.items():
        outcome = check(..., None, None, None)  # the unsolved template's value
        assert not outcome.passed and outcome.exercise == exercise_id
        assert capsys.readouterr().out == outcome.line + "\n"
        assert (
            outcome.line.startswith(f"❌ {exercise_id}: not answered yet")
            and "Hint:" in outcome.line
        )


def test_a_check_never_raises_on_a_broken_answer(capsys) -> None:
    outcome = exercises_eval.check_gram(lambda f: 1 / 0)
    assert not outcome.passed and "ZeroDivisionError" in outcome.line
    outcome = exercises_eval.check_fid("not a number", *exercises_eval.exercise_features())
    assert not outcome.passed and outcome.line.startswith("❌ 07-a: checking it failed")


def _passes(outcome: grading.Outcome) -> bool:
    return outcome.passed and outcome.line.startswith(f"✅ {outcome.exercise}:")


def test_palette_and_latent_checks() -> None:
    rng = np.random.default_rng(0)
    from PIL import Image

    photo = Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8))
    stage = np.asarray(exercises.mural_stages(photo, seed=0)["posterised"])
    used = len({tuple(p) for p in stage.reshape(-1, 3)})
    offered = len(exercises.palette_family(exercises.MuralConfig())[1])
    assert _passes(exercises.check_palette_colours((used, offered), photo))
    assert not exercises.check_palette_colours((used + 1, offered), photo).passed
    vae = exercises.sd14_meta_modules()["vae"]
    assert _passes(exercises.check_latent_side(64, vae, 512))  # SD-1.4: 512 px → 64² latents
    assert not exercises.check_latent_side(512 // 4, vae, 512).passed


def test_shift_and_parameter_counts_match_the_published_ones() -> None:
    assert exercises.sd14_shift_count() == (282, 222_696)  # SVDiff on SD-1.4
    assert _passes(exercises.check_shift_count(222_696))
    assert not exercises.check_shift_count(222_695).passed
    assert _passes(exercises.check_svd_inst_parameters(3_737_856 + 222_696))
    assert not exercises.check_svd_inst_parameters(3_737_856).passed


def _toy_layer() -> exercises.SpectralShiftLayer:
    base = torch.nn.Linear(7, 5)
    u, s, vh = torch.linalg.svd(base.weight.detach(), full_matrices=False)
    return exercises.SpectralShiftLayer(base, u, s, vh)


def test_shifted_weight_check_needs_the_relu_and_the_scale() -> None:
    layer = _toy_layer()
    with torch.no_grad():
        layer.delta.fill_(0.25)
    layer.scale = 0.7

    def right(U, S, Vh, delta, scale):
        return U @ torch.diag(torch.clamp(S + scale * delta, min=0)) @ Vh

    assert _passes(exercises.check_shifted_weight(right, layer))
    no_relu = exercises.check_shifted_weight(
        lambda U, S, Vh, d, s: U @ torch.diag(S + s * d) @ Vh, layer
    )
    assert not no_relu.passed and "keeps the negative" in no_relu.line
    assert not exercises.check_shifted_weight(
        lambda U, S, Vh, d, s: right(U, S, Vh, d, 1.0), layer
    ).passed
    # The layer's own δ and scale are back as they were.
    assert torch.all(layer.delta == 0.25) and layer.scale == 0.7


def test_add_noise_check_against_the_closed_form() -> None:
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2  # SD's schedule, written out here
    alpha_bar = torch.tensor(np.cumprod(1 - betas))

    def right(x0, noise, t):
        return alpha_bar[t].sqrt() * x0 + (1 - alpha_bar[t]).sqrt() * noise

    assert _passes(exercises.check_add_noise(right, sched))
    wrong = exercises.check_add_noise(
        lambda x0, n, t: alpha_bar[t] * x0 + (1 - alpha_bar[t]) * n, sched
    )
    assert not wrong.passed and "off by" in wrong.line


def test_affine_token_check(tmp_path: Path) -> None:
    from svdinst.training.inversion import save_image_to_token

    config = exercises.ImageToTokenConfig(image_dim=12, token_dim=10, heads=2, head_dim=4)
    torch.manual_seed(0)
    module = exercises.ImageToToken(config)
    save_image_to_token(exercises.RunFolder(tmp_path).image_to_token, module)
    module.eval()
    # Independently of the kit's attention: with one key the output is to_out(to_v(x)).
    a = module.net[1].weight @ module.attn2.to_out[0].weight @ module.attn2.to_v.weight
    b = module.net[1].weight @ module.attn2.to_out[0].bias + module.net[1].bias
    assert _passes(exercises.check_affine_token((a.detach(), b.detach()), tmp_path))
    assert not exercises.check_affine_token((a.detach(), torch.zeros(10)), tmp_path).passed


def test_cross_attention_share_check(tmp_path: Path) -> None:
    from svdinst.spectral import add_spectral_shifts, save_spectral_shifts

    model = torch.nn.Module()
    model.block = torch.nn.Module()
    model.block.attn2 = torch.nn.Linear(4, 3)
    model.block.ff = torch.nn.Linear(4, 6)
    layers = add_spectral_shifts(model)
    with torch.no_grad():
        layers["block.attn2"].delta.fill_(2.0)  # 3 shifts: Σδ² = 12
        layers["block.ff"].delta.fill_(1.0)  # 4 shifts: Σδ² = 4
    save_spectral_shifts(model, exercises.RunFolder(tmp_path).spectral_shifts)
    outcome = exercises.check_cross_attention_share(12 / 16, tmp_path)
    assert _passes(outcome) and "75.0%" in outcome.line and "42.9% of the shifts" in outcome.line
    assert not exercises.check_cross_attention_share(3 / 7, tmp_path).passed


class _Img2Img:
    """Just what the checks use of diffusers' img2img pipeline: its scheduler and its own
    ``get_timesteps`` (the method, borrowed from the real class)."""

    def __init__(self) -> None:
        from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

        self.scheduler = DDIMScheduler(
            beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1
        )
        self._get = StableDiffusionImg2ImgPipeline.get_timesteps

    def get_timesteps(self, *args):
        return self._get(self, *args)


@pytest.mark.parametrize(("strength", "steps"), [(0.8, 50), (0.5, 20), (0.3, 10)])
def test_first_timestep_and_signal_checks(strength: float, steps: int) -> None:
    pipe = _Img2Img()
    kept = int(strength * steps)
    t0 = (kept - 1) * (1000 // steps) + 1  # DDIM "leading" spacing, steps_offset 1
    assert _passes(exercises_eval.check_first_timestep(t0, pipe, strength, steps))
    assert not exercises_eval.check_first_timestep(
        int(strength * 1000), pipe, strength, steps
    ).passed
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    signal = float(np.sqrt(np.prod(1 - betas[: t0 + 1])))
    assert _passes(exercises_eval.check_signal_kept(signal, pipe, strength, steps))
    assert not exercises_eval.check_signal_kept(signal**2, pipe, strength, steps).passed


def _adain(content, style, unbiased=True):
    def stats(f):
        flat = f.flatten(2)
        return flat.mean(-1)[..., None, None], (flat.var(-1, unbiased=unbiased) + 1e-5).sqrt()[
            ..., None, None
        ]

    (cm, cs), (sm, ss) = stats(content), stats(style)
    return (content - cm) / cs * ss + sm


def test_adain_and_gram_checks() -> None:
    assert _passes(exercises_eval.check_adain(_adain))
    assert not exercises_eval.check_adain(lambda c, s: _adain(c, s, unbiased=False)).passed
    assert not exercises_eval.check_adain(lambda c, s: c).passed

    def gram(f, norm=True):
        flat = f.flatten(2)
        g = torch.einsum("nci,ndi->ncd", flat, flat)
        return g / (f.shape[1] * flat.shape[-1]) if norm else g

    assert _passes(exercises_eval.check_gram(gram))
    wrong = exercises_eval.check_gram(lambda f: gram(f, norm=False))
    assert not wrong.passed and "120×" in wrong.line  # C·H·W = 6·4·5


def test_fid_and_kid_checks_against_scipy_and_numpy() -> None:
    f1, f2 = (f.numpy() for f in exercises_eval.exercise_features())
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    fid = ((f1.mean(0) - f2.mean(0)) ** 2).sum() + np.trace(
        s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real
    )
    assert _passes(exercises_eval.check_fid(fid, f1, f2))
    assert not exercises_eval.check_fid(fid * 1.01, f1, f2).passed
    d, n = f1.shape[1], len(f1)
    k = [(a @ b.T / d + 1) ** 3 for a, b in ((f1, f1), (f2, f2), (f1, f2))]
    off = [(m.sum() - np.trace(m)) / (n * (n - 1)) for m in k[:2]]
    kid = off[0] + off[1] - 2 * k[2].mean()
    assert _passes(exercises_eval.check_kid(kid, f1, f2))
    biased = k[0].mean() + k[1].mean() - 2 * k[2].mean()  # diagonals kept: the biased MMD²
    assert not exercises_eval.check_kid(biased, f1, f2).passed


def test_make_test_runs_the_solved_notebooks_and_make_reproduce_the_unsolved() -> None:
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("no make")
    make = (REPO / "Makefile").read_text()
    assert re.search(r"^SOLVED \?= 0$", make, re.M)  # make reproduce: learners read ❌ hints
    test_recipe = make.split("\ntest:")[1].split("\n\n")[0]
    assert "SOLVED=1" in test_recipe

    def dry(*args: str) -> str:
        return subprocess.run(
            ["make", "-n", "notebooks", "NOTEBOOKS=notebooks/01_data.ipynb", *args],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip

    solved = dry("SOLVED=1")
    assert (
        'tools/solutions.py solve "$nb"' in solved and 'tools/solutions.py verify "$out"' in solved
    )
    assert 'if [ "1" = 1 ]' in solved and 'if [ "0" = 1 ]' in dry()


class _NotebookNames(dict):
    """A notebook's namespace stand-in: names the check cells read (``photo``, ``run``, …) that
    the exercise cell did not bind come back as placeholders."""

    def __missing__(self, name: str) -> object:
        from unittest.mock import MagicMock

        return MagicMock(name=name)  # subscripts and attributes work: sd14["vae"], main.pipe


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_unsolved_cells_run_and_their_checks_print_a_fail(path: Path, capsys) -> None:
    # The notebook's own exercise and check cells, as a learner's "Run all" executes them.
    nb = nbformat.read(path, as_version=4)
    cells = tool.exercise_cells(nb)
    checks = [c for c in nb.cells if "check" in c.metadata.get("tags", [])]
    # The check modules under the names the notebooks import them as (07 does it in a plain cell).
    namespace = _NotebookNames(exercises=exercises, exercises_eval=exercises_eval)
    for exercise_id, cell in cells.items():
        exec(compile(cell.source, f"{path.name}:{exercise_id}", "exec"), {}, namespace)
        assert namespace[tool.answer_name(exercise_id)] is Ellipsis
    for cell in checks:
        exec(compile(cell.source, f"{path.name}:check", "exec"), {}, namespace)
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        line for line in printed if line.startswith("❌ ") and "not answered yet" in line
    ]
    assert sorted(line.split(":")[0][2:] for line in printed) == sorted(cells)
