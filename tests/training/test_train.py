"""Training loop: the three modes, the CLI, exact resume, run folders and load_run."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from svdinst.cli import main
from svdinst.errors import RunFolderError
from svdinst.formats.checkpoint import save_checkpoint
from svdinst.training.config import TrainConfig
from svdinst.training.loop import TrainingDivergedError, train

# Small enough for a 2-core CI box: 32 px crops (4×4 latents), a pool of 4 cached crops.
FAST = {"resolution": 32, "crop_pool": 4, "progress": False, "warmup_steps": 5}
CLI_FAST = ["--resolution", "32", "--crop-pool", "4", "--warmup-steps", "5", "--no-progress"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, style_image, tiny_model_dir) -> Path:
    """`svdinst train --mode svd-inst --steps 60` through the CLI (checkpoint at 30 for resume)."""
    out = tmp_path_factory.mktemp("runs") / "svd-inst"
    argv = ["train", "--model", str(tiny_model_dir), "--style", str(style_image)]
    argv += ["--mode", "svd-inst", "--steps", "60", "--out", str(out), "--lr", "1e-2"]
    argv += ["--batch-size", "8"]  # averages out the timestep noise of the per-step loss
    assert main([*argv, *CLI_FAST, "--checkpoint-every", "30"]) == 0
    return out


def _losses(run: Path) -> list[float]:
    with (run / "log.csv").open() as fh:
        return [float(r["loss"]) for r in csv.DictReader(fh)]


def test_cli_run_folder_and_loss_falls(cli_run, tiny_model_dir):
    names = {p.name for p in cli_run.iterdir()}
    assert {"config.json", "learned_embeds.safetensors", "image_to_token.safetensors"} <= names
    assert {"spectral_shifts.safetensors", "log.csv", "checkpoints"} <= names
    config = json.loads((cli_run / "config.json").read_text())
    assert config["model"] == str(tiny_model_dir) and config["mode"] == "svd-inst"
    assert config["placeholder_token"] == "<mural>" and config["prompt_template"] == "{}"
    assert config["svdinst_version"] and config["steps"] == 60 and config["lr"] == 1e-2
    with (cli_run / "log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == list(range(1, 61))
    assert set(rows[0]) == {"step", "loss", "lr", "seconds", "token_norm"}
    norms = [float(r["token_norm"]) for r in rows]  # the placeholder's ‖e‖ each step used
    assert all(0 < v < 100 for v in norms) and len(set(norms)) > 1  # InST's token moves
    losses = _losses(cli_run)
    # Same seed with lr 1e-12 (training that does nothing): first-10 1.09, last-10 1.06 — the
    # sampling noise alone. Trained: 1.06 → 0.83. The margin separates the two.
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.1


def test_log_lr_is_the_lr_the_step_used(cli_run):
    """log.csv's lr of step s is the warm-up ramp's value *during* step s: lr·min(1, s/warm-up)."""
    with (cli_run / "log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    logged = [float(r["lr"]) for r in rows]
    expected = [1e-2 * min(1.0, s / 5) for s in range(1, 61)]
    assert logged == pytest.approx(expected, rel=1e-5)


def test_trained_run_lowers_the_loss_on_held_out_noise(cli_run, tiny_model_dir, style_image):
    """load_run applies both parts: a fixed batch of noise/timesteps is denoised better."""
    from svdinst.models.loading import load_components
    from svdinst.training.runs import load_run
    from svdinst.training.style_crops import StyleSampler

    def held_out_loss(apply_run: bool) -> float:
        c = load_components(
            tiny_model_dir, ["unet", "vae", "text_encoder", "tokenizer", "scheduler"]
        )
        if apply_run:
            info = load_run(cli_run, c)
            assert info.merged and info.prompt == "<mural>" and info.mode == "svd-inst"
            prompt = info.prompt
        else:
            prompt = "painting"
        gen = torch.Generator().manual_seed(123)
        sampler = StyleSampler(
            [Image.open(style_image).convert("RGB")], c.vae, 32, "flip", 0.5, 0, 0
        )
        picks, _, eps = sampler.draw(32, gen)
        z = sampler.latents(picks, eps, torch.device("cpu"))
        noise = torch.randn(z.shape, generator=gen)
        t = torch.randint(0, 1000, (32,), generator=gen)
        ids = c.tokenizer([prompt] * 32, padding="max_length", max_length=77, return_tensors="pt")
        with torch.no_grad():
            cond = c.text_encoder(ids.input_ids)[0]
            pred = c.unet(c.scheduler.add_noise(z, noise, t), t, cond).sample
        return float(torch.nn.functional.mse_loss(pred, noise))

    assert held_out_loss(True) < held_out_loss(False) - 0.02


def test_load_run_warns_when_the_base_model_differs(cli_run, tiny_model_dir):
    """Shifts of a run trained on model A loaded into a same-shaped model B: a warning, not silence."""
    import warnings

    from svdinst.models.loading import load_components
    from svdinst.training.runs import load_run

    def warnings_of(model) -> list[str]:
        c = load_components(model, ["unet", "text_encoder", "tokenizer"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            load_run(cli_run, c)
        return [str(w.message) for w in caught if "was trained on" in str(w.message)]

    assert warnings_of(tiny_model_dir) == []
    assert len(warnings_of("tiny")) == 1  # another name: the user is told to check


def test_resume_30_plus_30_equals_60(cli_run, tmp_path):
    from safetensors.torch import load_file

    part = tmp_path / "resumed"
    part.mkdir()
    shutil.copy(cli_run / "config.json", part / "config.json")
    (part / "checkpoints").mkdir()
    shutil.copytree(cli_run / "checkpoints" / "step-000030", part / "checkpoints" / "step-000030")
    with (cli_run / "log.csv").open() as src, (part / "log.csv").open("w") as dst:
        dst.writelines(src.readlines()[:31])
    config = TrainConfig.load(part)
    config.out = str(part)
    train(config, resume=True)
    assert _losses(part) == _losses(cli_run)
    for name in ("spectral_shifts", "learned_embeds", "image_to_token"):
        full, resumed = (load_file(r / f"{name}.safetensors") for r in (cli_run, part))
        assert full.keys() == resumed.keys()
        assert all(torch.equal(full[k], resumed[k]) for k in full), name


def test_checkpoint_is_flushed_to_disk_before_the_rename(tmp_path, monkeypatch):
    """Atomic *and* durable: state.pt is fsynced before os.replace publishes it, keep=2 holds."""
    import os

    from svdinst.formats.checkpoint import list_checkpoints, load_latest_checkpoint, save_checkpoint

    events: list[str] = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), replace(a, b))[1])
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, {"params": {"x": torch.full((2,), float(step))}})
    assert events[:2] == ["fsync", "replace"]
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 3]
    state = load_latest_checkpoint(tmp_path)
    assert state["step"] == 3 and torch.equal(state["params"]["x"], torch.full((2,), 3.0))


def test_overwrite_removes_the_old_runs_checkpoints_and_files(cli_run, tmp_path):
    """--overwrite of a 60-step svd-inst run by a 2-step inst run: nothing of the old run stays
    (its step-60 checkpoint would otherwise be the newest, evict the new one and be resumed)."""
    from svdinst.formats.checkpoint import list_checkpoints

    run = tmp_path / "run"
    shutil.copytree(cli_run, run)
    config = TrainConfig.load(run)
    config.out, config.mode, config.steps = str(run), "inst", 2
    train(config, overwrite=True)
    assert [step for step, _ in list_checkpoints(run)] == [2]
    assert not (run / "spectral_shifts.safetensors").exists()
    config.steps = 3
    train(config, resume=True)  # continues the new run, from its own step 2
    with (run / "log.csv").open() as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == [1, 2, 3]


@pytest.mark.parametrize("mode", ["inst", "svdiff"])
def test_each_mode_trains_exactly_its_parts(mode, tmp_path, style_image, tiny_model_dir):
    from safetensors.torch import load_file

    from svdinst.models.loading import load_components

    out = tmp_path / mode
    cfg = TrainConfig(model=str(tiny_model_dir), style=[str(style_image)], out=str(out), mode=mode,
                      steps=3, **FAST)  # fmt: skip
    result = train(cfg)
    assert len(result.losses) == 3 and all(np.isfinite(result.losses))
    params = torch.load(out / "checkpoints" / "step-000003" / "state.pt", weights_only=False)
    names = set(params["params"])
    files = {p.name for p in out.iterdir()}
    embed = load_file(out / "learned_embeds.safetensors")["<mural>"]
    base = load_components(tiny_model_dir, ["text_encoder", "tokenizer"])
    painting = base.tokenizer.encode("painting", add_special_tokens=False)[0]
    initial = base.text_encoder.get_input_embeddings().weight[painting]
    if mode == "inst":  # only the module: the UNet gets no gradients and no shift file
        assert names and all(n.startswith("image_to_token.") for n in names)
        assert "spectral_shifts.safetensors" not in files
        assert not torch.allclose(embed[0], initial)  # the module's output, not the initializer
    else:  # only δ: the placeholder row stays the initializer's
        assert names and all(n.startswith("unet.") and n.endswith(".delta") for n in names)
        assert "image_to_token.safetensors" not in files
        assert torch.equal(embed[0], initial)
        deltas = load_file(out / "spectral_shifts.safetensors")
        assert {f"unet.{k}.delta" for k in deltas} == names
        assert any(d.abs().sum() > 0 for d in deltas.values())
        with (out / "log.csv").open() as fh:  # the fixed placeholder's norm, every step
            norms = [float(r["token_norm"]) for r in csv.DictReader(fh)]
        assert norms == pytest.approx([float(initial.norm())] * 3, rel=1e-5)


def test_nan_loss_stops_and_keeps_the_last_checkpoint(
    tmp_path, style_image, tiny_model_dir, monkeypatch
):
    import svdinst.training.loop as train_module

    forward = train_module.DiffusionObjective.forward
    calls = {"n": 0}

    def poisoned(self, *args):
        calls["n"] += 1
        loss, emb = forward(self, *args)
        return (loss * float("nan") if calls["n"] == 3 else loss), emb

    monkeypatch.setattr(train_module.DiffusionObjective, "forward", poisoned)
    cfg = TrainConfig(model=str(tiny_model_dir), style=[str(style_image)], out=str(tmp_path / "r"),
                      mode="inst", steps=5, checkpoint_every=2, **FAST)  # fmt: skip
    with pytest.raises(TrainingDivergedError, match="step 3") as err:
        train(cfg)
    # A CPU (and a T4) has no bf16: the advice names what works there.
    assert "--lr-token (now 0.0001)" in str(err.value) and "bf16" not in str(err.value)
    assert (tmp_path / "r" / "checkpoints" / "step-000002" / "state.pt").exists()
    assert not (tmp_path / "r" / "learned_embeds.safetensors").exists()
    with pytest.raises(RunFolderError, match="incomplete"):
        from svdinst.training.runs import check_run

        check_run(tmp_path / "r")


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("svdinst: error: "), err
    return err[0]


def test_bad_input_exits_with_one_line(capsys, tmp_path, style_image, tiny_model_dir):
    base = ["train", "--model", str(tiny_model_dir), "--steps", "2", "--out", str(tmp_path / "r")]
    line = _one_line_error(capsys, [*base, "--style", str(tmp_path / "nope.png"), "--mode", "inst"])
    assert "nope.png" in line
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png")
    assert "broken.png" in _one_line_error(capsys, [*base, "--style", str(bad), "--mode", "inst"])
    line = _one_line_error(capsys, [*base, "--style", str(style_image), "--mode", "dreambooth"])
    assert "dreambooth" in line and "svd-inst" in line
    no_encoder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, no_encoder, ignore=shutil.ignore_patterns("image_encoder"))
    argv = ["train", "--model", str(no_encoder), "--style", str(style_image), "--mode", "svd-inst"]
    line = _one_line_error(capsys, [*argv, "--steps", "2", "--out", str(tmp_path / "r2")])
    assert "image_encoder" in line
    ok = ["--style", str(style_image), "--mode", "inst"]
    for flag, word, why in [("--initializer-token", "oil painting", "2 tokens"),
                            ("--placeholder-token", "painting", "already")]:  # fmt: skip
        assert main([*base, *ok, flag, word]) == 2  # found after the model loads (its bars)
        err = capsys.readouterr().err.strip()
        last = err.splitlines()[-1]
        assert "Traceback" not in err and last.startswith("svdinst: error: ")
        assert flag in last and why in last
    with pytest.raises(RunFolderError, match="does not exist"):
        from svdinst.training.runs import load_run

        load_run(tmp_path / "missing-run", None)


def test_learned_embeds_load_with_stock_diffusers(cli_run, tiny_model_dir):
    from diffusers import StableDiffusionImg2ImgPipeline
    from safetensors.torch import load_file

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(tiny_model_dir, safety_checker=None)
    pipe.load_textual_inversion(str(cli_run / "learned_embeds.safetensors"))
    token_id = pipe.tokenizer.convert_tokens_to_ids("<mural>")
    row = pipe.text_encoder.get_input_embeddings().weight[token_id]
    saved = load_file(cli_run / "learned_embeds.safetensors")["<mural>"][0]
    torch.testing.assert_close(row, saved)


def test_benchmark_script_runs_small_and_keeps_other_report_sections(tmp_path):
    import importlib.util

    path = Path(__file__).parents[2] / "benchmarks" / "train_step.py"
    spec = importlib.util.spec_from_file_location("train_step_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = tmp_path / "benchmarks.md"
    report.write_text(
        "# Benchmarks\n\n<!-- spectral_step:begin -->\nkeep me\n<!-- spectral_step:end -->\n"
    )
    argv = ["--small", "--steps", "4", "--modes", "inst", "svd-inst", "--work", str(tmp_path)]
    bench.main([*argv, "--write-report", "--report", str(report)])
    text = report.read_text()
    begin = "<!-- train_step:begin -->"
    assert "keep me" in text and text.count(begin) == 1
    assert "| svd-inst | 64 | 1 |" in text and "| inst | 64 | 1 |" in text
    # a rerun replaces its own block; another kind of run adds a block
    bench.write_block(report, "train_step", bench.HEADING, "new table", "modes-small")
    bench.write_block(report, "train_step", bench.HEADING, "t4 table", "modes-capt4")
    text = report.read_text()
    assert "keep me" in text and "new table" in text and "| inst | 64" not in text
    assert "t4 table" in text and text.count(begin) == 1


def test_ensure_run_reuses_or_refuses(cli_run, tmp_path):
    from svdinst.course.plots import plot_loss_curves, plot_shift_magnitudes
    from svdinst.training.runs import ensure_run, shift_magnitudes

    config = TrainConfig.load(cli_run)
    stamp = (cli_run / "learned_embeds.safetensors").stat().st_mtime_ns
    assert ensure_run(config) == cli_run
    assert (cli_run / "learned_embeds.safetensors").stat().st_mtime_ns == stamp  # not retrained
    config.out = str(tmp_path / "none")
    with pytest.raises(RunFolderError, match="MAKE_MISSING"):
        ensure_run(config, make_missing=False)
    norms = list(shift_magnitudes(cli_run).values())
    assert norms == sorted(norms, reverse=True) and norms[0] > 0
    assert len(plot_loss_curves({"a": cli_run, "b": cli_run}).axes[0].lines) == 4
    assert len(plot_shift_magnitudes(cli_run, top=5).axes[0].patches) == 5


def test_fast_spectral_path_trains_like_the_exact_one(tmp_path, style_image, tiny_model_dir):
    losses = {}
    for fast in (False, True):
        cfg = TrainConfig(model=str(tiny_model_dir), style=[str(style_image)], mode="svd-inst",
                          out=str(tmp_path / str(fast)), steps=4, fast_shifts=fast, grad_accum=2,
                          **FAST)  # fmt: skip
        losses[fast] = train(cfg).losses
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-5)


def test_cached_latents_are_the_vae_posterior_of_the_crops(tiny_model_dir, style_image):
    """The pool's mean + std·ε equals encoding the same crop now (flip pool: image + mirror)."""
    from PIL import ImageOps

    from svdinst.data import center_crop_resize, to_tensor
    from svdinst.models.loading import load_components
    from svdinst.training.style_crops import StyleSampler

    vae = load_components(tiny_model_dir, ["vae"]).vae
    image = Image.open(style_image).convert("RGB")
    sampler = StyleSampler([image, image.rotate(90)], vae, 32, "flip", 0.5, 0, seed=0)
    assert sampler.owners.tolist() == [0, 0, 1, 1]
    gen = torch.Generator().manual_seed(0)
    picks, owners, eps = sampler.draw(6, gen)
    z = sampler.latents(picks, eps, torch.device("cpu"))
    crops = [center_crop_resize(image, 32), ImageOps.mirror(center_crop_resize(image, 32))]
    crops += [center_crop_resize(image.rotate(90), 32)]
    crops.append(ImageOps.mirror(crops[-1]))
    with torch.no_grad():
        dist = vae.encode(torch.stack([to_tensor(c) for c in crops])).latent_dist
    expected = (dist.mean[picks] + dist.std[picks] * eps) * vae.config.scaling_factor
    torch.testing.assert_close(z, expected, rtol=1e-4, atol=1e-5)
    assert torch.equal(owners, sampler.owners[picks])
    fresh = StyleSampler([image], vae, 32, "crop-flip", 0.5, 0, seed=0)  # no pool: crops per step
    crops, owners, eps = fresh.draw(3, gen)
    assert len(crops) == 3 and crops[0].size == (32, 32)
    assert fresh.latents(crops, eps, torch.device("cpu")).shape == (3, 4, 4, 4)


def test_fresh_crops_follow_the_vae_downsampling_factor() -> None:
    """A VAE with 3 levels (f = 4, the pocket model's) and 2 latent channels: ε fits its latents."""
    from diffusers import AutoencoderKL

    from svdinst.training.style_crops import StyleSampler, vae_scale_factor

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 3,
                        up_block_types=("UpDecoderBlock2D",) * 3, latent_channels=2,
                        norm_num_groups=4).eval()  # fmt: skip
    assert vae_scale_factor(vae) == 4
    image = Image.new("RGB", (48, 40), (200, 30, 90))
    sampler = StyleSampler([image], vae, 16, "crop-flip", 0.5, 0, seed=0)
    crops, _, eps = sampler.draw(2, torch.Generator().manual_seed(0))
    assert eps.shape == (2, 2, 4, 4)
    assert sampler.latents(crops, eps, torch.device("cpu")).shape == (2, 2, 4, 4)


def test_patch_tokens_variant_trains(tmp_path, style_image, tiny_model_dir):
    from svdinst.training.inversion import load_image_to_token

    cfg = TrainConfig(model=str(tiny_model_dir), style=[str(style_image)], out=str(tmp_path / "p"),
                      mode="inst", steps=2, image_tokens="patches", prompt_template="style",
                      **FAST)  # fmt: skip
    train(cfg)
    saved = json.loads((tmp_path / "p" / "config.json").read_text())
    assert saved["prompt_template"] == "a painting in the style of {}"
    assert (
        load_image_to_token(tmp_path / "p" / "image_to_token.safetensors").config.image_tokens
        == "patches"
    )


def test_multi_gpu_runs_do_not_rebroadcast_the_frozen_svd_buffers() -> None:
    # DDP's default copies every buffer (the SVD factors: GBs at SD-1.4 size) from rank 0 before
    # each forward; they never differ between ranks, so the kit turns that copy off.
    from svdinst.training.loop import make_accelerator

    accelerator = make_accelerator(cuda=False, precision="no")
    handler = accelerator.ddp_handler
    assert handler is not None and handler.broadcast_buffers is False


def test_resume_accepts_the_same_style_folder_spelled_differently(tmp_path):
    from svdinst.training.config import prepare_run_dir

    config = TrainConfig(model="tiny", style=["data/style"], out=str(tmp_path / "r"), mode="inst")
    prepare_run_dir(config, resume=False, overwrite=False)
    config.save(tmp_path / "r")
    save_checkpoint(tmp_path / "r", 1, {})  # --resume needs a checkpoint (refused before loading)
    for same in ("data/style/", "./data/style"):
        config.style = [same]
        prepare_run_dir(config, resume=True, overwrite=False)  # no error
    config.style = ["data/other"]
    with pytest.raises(RunFolderError, match="style"):
        prepare_run_dir(config, resume=True, overwrite=False)


def test_gradient_checkpointing_trains_without_deprecated_calls(
    tmp_path, style_image, tiny_model_dir
):
    """The T4 setting (checkpointing UNet and text tower) runs, through the non-deprecated API."""
    import warnings

    cfg = TrainConfig(model=str(tiny_model_dir), style=[str(style_image)], out=str(tmp_path / "g"),
                      mode="svd-inst", steps=2, gradient_checkpointing=True, **FAST)  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(cfg)
    assert len(result.losses) == 2 and all(math.isfinite(v) for v in result.losses)
    assert not [w for w in caught if "checkpointing_enable" in str(w.message)]


def test_divergence_advice_names_bf16_only_where_the_card_has_it(monkeypatch):
    import svdinst.training.memory as memory

    monkeypatch.setattr(memory, "bf16_supported", lambda device=None: False)  # a T4
    t4 = memory.divergence_advice(1e-4, 1e-3, "cuda")
    assert "bf16" not in t4 and "--lr-token (now 0.0001)" in t4 and "--lr-shifts (now 0.001)" in t4
    assert "fp16 keeps the trained parts in fp32" in t4
    monkeypatch.setattr(memory, "bf16_supported", lambda device=None: True)  # an A100
    assert "--mixed-precision bf16" in memory.divergence_advice(None, 1e-3, "cuda")


def test_cli_defaults_fit_a_t4(monkeypatch, tmp_path, style_image):
    """`svdinst train` defaults: precision auto (fp16 on CUDA, fp32 on a CPU), gradient
    checkpointing on with CUDA, InST's lr 1e-4 for the token and SVDiff's 1e-3 for δ."""
    import svdinst.training.loop as loop
    from svdinst.training.config import TrainConfigError
    from svdinst.training.memory import training_precision, use_gradient_checkpointing

    seen = []
    monkeypatch.setattr(loop, "train", lambda config, **kw: seen.append(config) or
                        loop.TrainResult(tmp_path, [], 0, 0.0))  # fmt: skip
    argv = ["train", "--model", "tiny", "--style", str(style_image), "--mode", "svd-inst"]
    assert main([*argv, "--steps", "1", "--out", str(tmp_path / "r")]) == 0
    config = seen[0]
    assert config.mixed_precision == "auto" and config.gradient_checkpointing is None
    assert (config.token_lr, config.shifts_lr) == (1e-4, 1e-3)
    assert training_precision(config.mixed_precision, "cuda") == "fp16"
    assert training_precision(config.mixed_precision, "cpu") == "no"
    assert use_gradient_checkpointing(None, "cuda") and not use_gradient_checkpointing(None, "cpu")
    assert main([*argv, "--steps", "1", "--out", "x", "--no-gradient-checkpointing"]) == 0
    assert seen[1].gradient_checkpointing is False
    assert main([*argv, "--steps", "1", "--out", "x", "--lr", "0.01"]) == 0
    assert (seen[2].token_lr, seen[2].shifts_lr) == (0.01, 0.01)
    with pytest.raises(TrainConfigError, match="bf16"):  # never on a T4 (nor without CUDA)
        training_precision("bf16", "cuda")


@pytest.mark.parametrize("checkpointing", [True, False])
def test_gradient_checkpointing_recomputes_both_towers(
    checkpointing, monkeypatch, tmp_path, style_image, tiny_model_dir
):
    """The frozen towers stay in eval mode, yet checkpointing recomputes their blocks in the
    backward pass: one step runs a text layer's MLP and a UNet resnet twice (once without)."""
    import svdinst.training.loop as loop

    counts = {"text": 0, "unet": 0}
    load = loop.load_components

    def counting_load(model, parts, **kw):
        comps = load(model, parts, **kw)
        if comps.unet is not None:
            assert not comps.unet.training and not comps.text_encoder.training  # eval mode
            hook = lambda key: lambda *a: counts.__setitem__(key, counts[key] + 1)  # noqa: E731
            # Pre-hooks: the recomputation stops early, before a block's forward hook would run.
            layers = [m for m in comps.text_encoder.modules() if hasattr(m, "mlp")]  # 4.x and 5.x
            layers[0].mlp.register_forward_pre_hook(hook("text"))
            # The last resnet depends on the prompt, so the backward pass reaches it.
            comps.unet.up_blocks[-1].resnets[-1].register_forward_pre_hook(hook("unet"))
        return comps

    monkeypatch.setattr(loop, "load_components", counting_load)
    cfg = TrainConfig(model=str(tiny_model_dir), style=[str(style_image)], out=str(tmp_path / "c"),
                      mode="inst", steps=1, gradient_checkpointing=checkpointing, **FAST)  # fmt: skip
    train(cfg)
    runs = 2 if checkpointing else 1
    assert counts == {"text": runs, "unet": runs}


def test_token_sees_the_training_crop_or_the_whole_image(tiny_model_dir):
    """InST computes the token from the sample it denoises: each pooled crop has its own CLIP
    features (encoded once); fresh crops are encoded per draw."""
    from svdinst.models.loading import load_components
    from svdinst.training.style_crops import StyleSampler

    vae = load_components(tiny_model_dir, ["vae"]).vae
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8))
    calls = []

    def encode(crops):  # a stand-in for CLIP: the mean colour of each crop
        calls.append(len(crops))
        return torch.stack([torch.tensor(np.asarray(c, float).mean((0, 1)))[None] for c in crops])

    pooled = StyleSampler([image], vae, 16, "crop-flip", 0.5, 5, seed=0, encode=encode)
    assert calls == [5] and pooled.pool_features.shape == (5, 1, 3)
    picks, _, _ = pooled.draw(4, torch.Generator().manual_seed(0))
    torch.testing.assert_close(pooled.features(picks), pooled.pool_features[picks])
    assert len({tuple(f.flatten().tolist()) for f in pooled.pool_features}) == 5  # crops differ
    fresh = StyleSampler([image], vae, 16, "crop-flip", 0.5, 0, seed=0, encode=encode)
    crops, _, _ = fresh.draw(3, torch.Generator().manual_seed(0))
    assert fresh.features(crops).shape == (3, 1, 3) and calls == [5, 3]


@pytest.mark.parametrize(("token_image", "crop_pool"), [("whole", 4), ("crop", 0)])
def test_token_image_options_train(token_image, crop_pool, tmp_path, style_image, tiny_model_dir):
    """`whole` (the kit's former input) and fresh crops encoded each step both train."""
    fast = {**FAST, "crop_pool": crop_pool}
    cfg = TrainConfig(model=str(tiny_model_dir), style=[str(style_image)], out=str(tmp_path / "t"),
                      mode="inst", steps=2, token_image=token_image, **fast)  # fmt: skip
    result = train(cfg)
    assert len(result.losses) == 2 and all(math.isfinite(v) for v in result.losses)
    assert json.loads((tmp_path / "t" / "config.json").read_text())["token_image"] == token_image


def test_saved_token_is_the_mean_or_one_style_images(tmp_path, style_image, tiny_model_dir):
    """Several style images: the saved token is the mean of their tokens (never a training input)
    or, with saved_token=<file name>, exactly that image's token."""
    from safetensors.torch import load_file

    from svdinst.models.loading import load_components
    from svdinst.training.config import TrainConfigError
    from svdinst.training.inversion import encode_images, load_image_to_token

    styles = tmp_path / "styles"
    styles.mkdir()
    shutil.copy(style_image, styles / "a.png")
    Image.open(style_image).transpose(Image.Transpose.ROTATE_90).save(styles / "b.png")
    vision = load_components(tiny_model_dir, ["image_encoder", "feature_extractor"])
    features = encode_images(
        vision.image_encoder, vision.feature_extractor,
        [Image.open(styles / n).convert("RGB") for n in ("a.png", "b.png")],
    )  # fmt: skip
    for saved in ("mean", "b.png"):
        out = tmp_path / saved
        train(TrainConfig(model=str(tiny_model_dir), style=[str(styles)], out=str(out),
                          mode="inst", steps=1, saved_token=saved, **FAST))  # fmt: skip
        with torch.no_grad():
            tokens = load_image_to_token(out / "image_to_token.safetensors")(features)
        expected = tokens.mean(0) if saved == "mean" else tokens[1]
        torch.testing.assert_close(
            load_file(out / "learned_embeds.safetensors")["<mural>"][0], expected
        )
    with pytest.raises(TrainConfigError, match=r"a\.png, b\.png"):
        train(TrainConfig(model=str(tiny_model_dir), style=[str(styles)], out=str(tmp_path / "x"),
                          mode="inst", steps=1, saved_token="c.png", **FAST))  # fmt: skip
