"""The course context: profile → train/stylize/baseline settings, run folders, the mode × seed loop."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import pytest
import torch

from svdinst.course import outputs
from svdinst.course.context import CourseContext
from svdinst.course.outputs import ensure_diffusion_outputs, train_and_stylize
from svdinst.course.profiles import PROFILES, get_profile
from svdinst.errors import RunFolderError


def _ctx(name: str, tmp_path: Path, device: str = "cpu", **overrides) -> CourseContext:
    return CourseContext(get_profile(name, verbose=False, **overrides), tmp_path, device)


def test_folders_and_run_names(tmp_path: Path) -> None:
    ctx = _ctx("tiny", tmp_path)
    assert (
        ctx.style_dir == tmp_path / "data" / "style" and ctx.test_dir == tmp_path / "data" / "test"
    )
    assert ctx.run_dir("inst") == tmp_path / "runs" / "inst"
    assert ctx.run_dir("svd-inst", 2) == tmp_path / "runs" / "svd-inst-seed2"
    assert ctx.baseline_run_dir("adain") == tmp_path / "runs" / "baselines" / "adain"
    assert ctx.figures_dir == tmp_path / "reports" / "figures"


def test_dtype_follows_the_device_policy(tmp_path: Path) -> None:
    assert _ctx("tiny", tmp_path).dtype == torch.float32
    assert _ctx("sd14", tmp_path, device="cuda").dtype == torch.float16


def test_train_config_is_sized_by_the_profile(tmp_path: Path) -> None:
    tiny, sd14 = _ctx("tiny", tmp_path), _ctx("sd14", tmp_path)
    config = tiny.train_config("svdiff", seed=1)
    assert config.out == str(tmp_path / "runs" / "svdiff-seed1") and config.seed == 1
    assert config.style == [str(tmp_path / "data" / "style")] and config.model == "tiny"
    assert (config.steps, config.batch_size, config.resolution) == (60, 4, 64)
    assert (config.lr, config.lr_shifts, config.mixed_precision) == (None, 1e-2, "no")
    assert config.token_lr == 1e-4  # InST's published lr for the image→token module
    big = sd14.train_config("svd-inst")
    assert (big.batch_size, big.resolution, big.mixed_precision) == (1, 512, "fp16")
    assert big.gradient_checkpointing and big.lr_shifts == 1e-3 and big.steps == 1000


def test_train_config_overrides(tmp_path: Path) -> None:
    ctx = _ctx("tiny", tmp_path)
    config = ctx.train_config(
        "inst", steps=7, lr=3e-4, prompt_template="a {}", image_tokens="patches"
    )
    assert (config.steps, config.lr, config.lr_shifts) == (7, 3e-4, 3e-4)
    assert (config.prompt_template, config.image_tokens) == ("a {}", "patches")
    auto = ctx.train_config("inst", steps="auto", lr="auto")
    assert (auto.steps, auto.lr, auto.lr_shifts, auto.token_lr) == (60, None, 1e-2, 1e-4)
    assert ctx.train_config("inst", out=tmp_path / "elsewhere").out == str(tmp_path / "elsewhere")


def test_train_steps_and_seeds(tmp_path: Path) -> None:
    tiny, pocket = _ctx("tiny", tmp_path), _ctx("pocket", tmp_path)
    assert tiny.train_steps(2) == 2 and tiny.train_steps() == 60
    assert pocket.train_steps(2) == pocket.profile.train_steps == 60  # short runs: tiny only
    assert pocket.training_seeds() == (0, 1, 2, 3, 4) and pocket.training_seeds([4]) == (4,)


def test_stylize_config_is_the_profiles(tmp_path: Path) -> None:
    pocket = _ctx("pocket", tmp_path).stylize_config()
    profile = PROFILES["pocket"]  # the committed pocket version's settings
    assert (pocket.strength, pocket.seeds, pocket.steps, pocket.guidance) == (
        profile.strength,
        2,
        20,
        3.0,
    )
    sd14 = _ctx("sd14", tmp_path).stylize_config(init="inst", seeds=1)
    assert (sd14.strength, sd14.seeds, sd14.steps, sd14.init) == (0.8, 1, 50, "inst")
    assert sd14.guidance_scale == 10.0  # guidance None → InST's scale for init "inst"
    # a notebook's INIT = "auto" keeps each profile's own start
    assert _ctx("pocket", tmp_path).stylize_config(init="auto").init == profile.init == "inst"
    assert _ctx("sd14", tmp_path).stylize_config(init="auto").init == "img2img"


def test_baseline_settings(tmp_path: Path) -> None:
    tiny = _ctx("pocket", tmp_path).baseline_settings("balagan", tiny_steps=3)
    assert (tiny.steps, tiny.size, tiny.resolution, tiny.batch_size) == (3, "tiny", 128, None)
    assert tiny.checkpoint_every == 0
    gpu = _ctx("sd14", tmp_path).baseline_settings("balagan", gpu_steps=10, checkpoint_every=5)
    assert gpu.as_kwargs() == {
        "steps": 10, "size": "full", "resolution": 256, "batch_size": 4, "checkpoint_every": 5,
    }  # fmt: skip
    assert _ctx("sd14", tmp_path).baseline_settings("cyclegan").batch_size == 1  # paper's, < cap


def test_ensure_runs_loops_modes_then_seeds(tmp_path: Path, monkeypatch) -> None:
    seen = []
    monkeypatch.setattr(
        "svdinst.course.context.ensure_run",
        lambda config, make_missing, same_settings: (
            seen.append((config.mode, config.seed, config.steps)) or Path(config.out)
        ),
    )
    ctx = _ctx("pocket", tmp_path)
    runs = ctx.ensure_runs(["inst", "svdiff"], "auto", steps=3)
    seeds = ["", "-seed1", "-seed2", "-seed3", "-seed4"]  # pocket-v2: 5 training seeds
    assert list(runs) == [f"{mode}{s}" for mode in ("inst", "svdiff") for s in seeds]
    assert runs["svdiff-seed1"] == tmp_path / "runs" / "svdiff-seed1"
    assert seen[:3] == [("inst", 0, 3), ("inst", 1, 3), ("inst", 2, 3)]


def test_ensure_run_without_make_missing_raises(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match="MAKE_MISSING"):
        _ctx("tiny", tmp_path).ensure_run("inst", make_missing=False)


@pytest.fixture
def fake_pipeline(monkeypatch):
    """Replace training and stylizing by recorders: (name, run, prompt) per stylized folder."""
    calls: list[tuple] = []
    monkeypatch.setattr("svdinst.course.context.ensure_run", lambda config, **kw: Path(config.out))
    monkeypatch.setattr(CourseContext, "stylizer", lambda self, run=None, **kw: nullcontext(run))

    def fake_stylize(stylizer, content, out, config, max_photos=None):
        calls.append((Path(out).name, stylizer, config.prompt, Path(content).name, config.init))
        (Path(out) / "photo").mkdir(parents=True)
        (Path(out) / "photo" / "seed-0.png").write_bytes(b"")

    monkeypatch.setattr(outputs, "stylize_folder", fake_stylize)
    return calls


def test_train_and_stylize_with_a_base_model(tmp_path: Path, fake_pipeline) -> None:
    ctx = _ctx("tiny", tmp_path)
    runs = train_and_stylize(ctx, ["inst"], [0, 1], content=tmp_path / "crops",
                             out_root=tmp_path / "o", base_prompt="")  # fmt: skip
    assert runs == {"base": None, "inst": ctx.run_dir("inst"), "inst-seed1": ctx.run_dir("inst", 1)}
    assert fake_pipeline == [
        ("base", None, "", "crops", "img2img"),  # the base model gets the plain prompt
        ("inst", ctx.run_dir("inst"), None, "crops", "img2img"),  # a run: its own prompt
        ("inst-seed1", ctx.run_dir("inst", 1), None, "crops", "img2img"),
    ]
    assert (tmp_path / "o" / "inst-seed1" / "photo" / "seed-0.png").is_file()


def test_ensure_diffusion_outputs_makes_only_what_is_missing(tmp_path: Path, fake_pipeline) -> None:
    ctx = _ctx("tiny", tmp_path)
    assert ensure_diffusion_outputs(ctx, ["inst", "svdiff"], make_missing=False) == []
    assert fake_pipeline == []
    assert ensure_diffusion_outputs(ctx, ["inst"], init="inst") == ["inst"]
    assert fake_pipeline == [("inst", ctx.run_dir("inst"), None, "test", "inst")]
    assert ensure_diffusion_outputs(ctx, ["inst", "svdiff"], make_missing=False) == ["inst"]
    ensure_diffusion_outputs(ctx, ["inst", "svdiff"])
    assert [c[0] for c in fake_pipeline] == ["inst", "svdiff"]  # inst is not stylized again


def test_course_runs_checkpoint_so_a_disconnect_loses_one_interval(tmp_path: Path) -> None:
    """Issue 13, deliver 3: ensure_run resumes an interrupted run from its newest checkpoint, so
    course runs checkpoint every steps/10 (a Colab disconnect redoes at most 10 %)."""
    assert _ctx("tiny", tmp_path).train_config("svdiff").checkpoint_every == 6  # 60 steps
    assert _ctx("sd14", tmp_path).train_config("svd-inst").checkpoint_every == 100
    assert _ctx("tiny", tmp_path).train_config("inst", steps=7).checkpoint_every == 1
    assert _ctx("tiny", tmp_path).train_config("inst", checkpoint_every=0).checkpoint_every == 0


def test_train_and_stylize_frees_each_stylizer_before_the_next(tmp_path: Path, monkeypatch) -> None:
    """Issue 13, finding 3: two SD-1.4 models at once nearly fill a T4 (13.93 GiB of 14.0)."""
    events: list[str] = []

    class FakeStylizer:
        def __init__(self, run):
            self.name = run.name if run is not None else "base"
            events.append(f"open {self.name}")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            events.append(f"close {self.name}")

    monkeypatch.setattr("svdinst.course.context.ensure_run", lambda config, **kw: Path(config.out))
    monkeypatch.setattr(CourseContext, "stylizer", lambda self, run=None, **kw: FakeStylizer(run))
    monkeypatch.setattr(outputs, "stylize_folder", lambda *a, **k: events.append("stylize"))
    train_and_stylize(_ctx("tiny", tmp_path), ["inst", "svdiff"], [0], base_prompt="")
    assert events == [f"{e} {n}" if e != "stylize" else e for n in ("base", "inst", "svdiff")
                      for e in ("open", "stylize", "close")]  # fmt: skip


def test_train_and_stylize_stylizes_at_most_the_profiles_test_photos(
    tmp_path: Path, monkeypatch
) -> None:
    caps: list[int | None] = []
    monkeypatch.setattr("svdinst.course.context.ensure_run", lambda config, **kw: Path(config.out))
    monkeypatch.setattr(CourseContext, "stylizer", lambda self, run=None, **kw: nullcontext(run))
    monkeypatch.setattr(
        outputs, "stylize_folder", lambda *a, max_photos=None, **kw: caps.append(max_photos)
    )
    train_and_stylize(_ctx("tiny", tmp_path, test_photos=2), ["inst", "svdiff"], (0,))
    assert caps == [2, 2]  # a learner's 711 test photos must not blow the notebook's budget
