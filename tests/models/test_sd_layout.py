"""The SD-layout builder's presets, the full-size ``sd14-random`` model and profile, and the
settings every notebook derives from a profile (batch, checkpointing, baselines' batches)."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from svdinst.course.profiles import get_profile
from svdinst.course.settings import baseline_batch_size, profile_run_config
from svdinst.models.layouts import SDLayoutConfig, build_sd_layout_model, sd_layout_modules
from svdinst.models.loading import SD14_RANDOM, load_components, resolve_model

# SD-1.4's published parameter counts (CompVis/stable-diffusion-v1-4, openai/clip-vit-large-patch14).
SD14_COUNTS = {
    "unet": 859_520_964,
    "vae": 83_653_863,
    "text_encoder": 123_060_480,
    "image_encoder": 303_966_208,
}


def test_sd14_preset_has_sd14s_exact_parameter_counts() -> None:
    from accelerate import init_empty_weights

    with init_empty_weights():  # shapes only: nothing is allocated
        modules = sd_layout_modules(SDLayoutConfig.sd14())
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in modules.items()}
    assert counts == SD14_COUNTS
    unet = modules["unet"]
    assert unet.config.cross_attention_dim == 768 and unet.config.sample_size == 64
    assert modules["image_encoder"].config.projection_dim == 768
    assert modules["vae"].config.block_out_channels == (128, 256, 512, 512)


def test_presets_differ_only_where_sd14_is_bigger() -> None:
    tiny, sd14 = SDLayoutConfig.tiny(), SDLayoutConfig.sd14()
    assert tiny.version != sd14.version and sd14.save_dtype == "float16"
    assert tiny.seed == sd14.seed
    assert {f.name for f in fields(SDLayoutConfig)} >= {"unet_channels", "text_layers"}


def test_builder_size_switch_writes_fp16_labelled_deterministic_folders(tmp_path: Path) -> None:
    cfg = replace(SDLayoutConfig.tiny(), version="tiny-fp16", save_dtype="float16", label="test")
    a = build_sd_layout_model(tmp_path / "a", cfg)
    b = build_sd_layout_model(tmp_path / "b", cfg)
    c = build_sd_layout_model(tmp_path / "c", replace(cfg, seed=1))
    unet = "unet/diffusion_pytorch_model.safetensors"
    wa, wb, wc = (load_file(d / unet) for d in (a, b, c))
    assert all(w.dtype == torch.float16 for w in wa.values())
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert "never for quality claims" in (a / "README.md").read_text()
    comps = load_components(a, parts=["unet", "tokenizer"])  # loads back through from_pretrained
    assert comps.unet.dtype == torch.float32 and len(comps.tokenizer) == 49408


def test_sd14_random_resolves_to_a_cached_sd14_build(monkeypatch, tmp_path: Path) -> None:
    import svdinst.models.loading as models

    built = []

    def fake_build(out, config):  # the real build is 2.8 GB: check only what is asked for
        built.append(config)
        Path(out).mkdir(parents=True)
        (Path(out) / "model_index.json").write_text("{}")
        return Path(out)

    monkeypatch.setenv("SVDINST_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "build_sd_layout_model", fake_build)
    path = resolve_model(SD14_RANDOM)
    assert Path(path) == tmp_path / SDLayoutConfig.sd14().version
    assert resolve_model(SD14_RANDOM) == path and built == [SDLayoutConfig.sd14()]  # built once


def test_sd14_random_profile_is_sd14_without_quality_claims(capsys) -> None:
    sd14, rehearsal = get_profile("sd14"), get_profile("sd14-random")
    assert rehearsal.model == SD14_RANDOM and not rehearsal.quality_claims
    assert replace(rehearsal, name="sd14", model=sd14.model, quality_claims=True) == sd14
    assert "never for quality claims" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["sd14", "sd14-random"])
def test_full_size_training_settings_fit_a_t4(name: str, tmp_path: Path) -> None:
    profile = get_profile(name, verbose=False)
    config = profile_run_config("svd-inst", tmp_path / "run", profile=profile, style_dir=tmp_path)
    assert (config.batch_size, config.gradient_checkpointing) == (1, True)
    assert (config.mixed_precision, config.resolution) == ("fp16", 512)
    assert (config.lr, config.lr_shifts, config.steps) == (None, 1e-3, profile.train_steps)
    assert config.token_lr == 1e-4  # InST's published lr (v1-finetune.yaml, batch 1)


def test_tiny_training_settings(tmp_path: Path) -> None:
    tiny = get_profile("tiny", verbose=False)
    config = profile_run_config("svdiff", tmp_path / "r", profile=tiny, style_dir=tmp_path, lr=3e-4)
    assert (config.batch_size, config.gradient_checkpointing, config.lr_shifts) == (4, False, 3e-4)
    assert (
        profile_run_config("svdiff", tmp_path, profile=tiny, style_dir=tmp_path).lr_shifts == 1e-2
    )
    assert config.token_lr == 3e-4  # a number sets both parts' lr


def test_profile_token_lr_reaches_the_run(tmp_path: Path) -> None:
    """A profile's ``lr_token`` (the pocket model's) trains the image→token module unless an
    explicit lr overrides both; ``None`` leaves InST's 1e-4."""
    from dataclasses import replace

    tiny = get_profile("tiny", verbose=False)
    pocket_like = replace(tiny, lr_token=3e-3)
    auto = profile_run_config("inst", tmp_path, profile=pocket_like, style_dir=tmp_path)
    assert (auto.lr_token, auto.token_lr) == (3e-3, 3e-3)
    fixed = profile_run_config("inst", tmp_path, profile=pocket_like, style_dir=tmp_path, lr=5e-4)
    assert (fixed.lr_token, fixed.token_lr) == (None, 5e-4)
    assert profile_run_config("inst", tmp_path, profile=tiny, style_dir=tmp_path).token_lr == 1e-4


def test_baseline_batch_is_the_papers_capped_for_a_t4() -> None:
    from svdinst.baselines import get_baseline

    sd14, tiny = get_profile("sd14", verbose=False), get_profile("tiny", verbose=False)
    paper = {n: get_baseline(n).config_class().batch_size for n in ("cyclegan", "balagan")}
    assert paper == {"cyclegan": 1, "balagan": 64}
    assert baseline_batch_size(get_baseline("cyclegan"), sd14) == 1
    assert baseline_batch_size(get_baseline("balagan"), sd14) == sd14.baseline_batch_cap == 4
    assert baseline_batch_size(get_baseline("balagan"), tiny) == 64
    assert baseline_batch_size(get_baseline("balagan"), sd14, 2) == 2
    assert baseline_batch_size(get_baseline("balagan"), sd14, None) is None
    assert baseline_batch_size(get_baseline("magenta"), sd14) is None  # no batch to set


def test_notebook_setup_labels_random_weight_profiles(capsys, tmp_path: Path) -> None:
    from svdinst.course.notebook import setup

    ctx = setup("sd14-random", tmp_path)
    out = capsys.readouterr().out
    assert ctx.profile.model == SD14_RANDOM
    assert "profile 'sd14-random' (model sd14-random; random weights, never for quality" in out
    setup("sd14", tmp_path)
    assert "never for quality" not in capsys.readouterr().out


def test_saved_schedulers_do_not_clip_latents_like_sd14(tiny_model_dir: Path) -> None:
    """SD-1.4's scheduler_config.json says clip_sample: false; DDIM built from ours must agree.

    Without it DDIM clips predicted latents to [-1, 1] and the pocket model's img2img is noise.
    """
    from diffusers import DDIMScheduler, DDPMScheduler, PNDMScheduler

    from svdinst.models.loading import pocket_model_path

    folders = [tiny_model_dir]
    if (pocket_model_path() / "model_index.json").exists():
        folders.append(pocket_model_path())
    for folder in folders:
        config = PNDMScheduler.from_pretrained(folder, subfolder="scheduler").config
        assert DDIMScheduler.from_config(config).config.clip_sample is False, folder
        assert DDPMScheduler.from_config(config).config.clip_sample is False, folder


def test_hub_layout_folders_load_like_the_hubs_own(tmp_path: Path) -> None:
    import json

    from diffusers import StableDiffusionPipeline

    from svdinst.models.layouts import SD14_HUB_COMPONENTS, build_hub_layout_model

    cfg = replace(SDLayoutConfig.tiny(), save_dtype="float16")  # the hub's files are fp32
    model, vision = build_hub_layout_model(tmp_path / "sd14", tmp_path / "clip-l", cfg)
    index = json.loads((model / "model_index.json").read_text())
    assert {k for k in index if not k.startswith("_")} == set(SD14_HUB_COMPONENTS)
    assert index["safety_checker"] == [None, None]  # how diffusers saves "no safety checker"
    assert index["feature_extractor"] == ["transformers", "CLIPImageProcessor"]
    assert not (model / "image_encoder").exists()
    assert (vision / "preprocessor_config.json").is_file()
    weights = load_file(model / "unet" / "diffusion_pytorch_model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}
    # diffusers accepts the folder as a pipeline, and the kit loads it with the separate tower
    pipe = StableDiffusionPipeline.from_pretrained(model)
    assert pipe.safety_checker is None and pipe.feature_extractor is not None
    parts = ["unet", "text_encoder", "tokenizer", "image_encoder", "feature_extractor"]
    comps = load_components(model, parts, image_encoder=vision)
    assert comps.image_encoder.config.projection_dim == cfg.projection_dim
    assert comps.image_encoder.dtype == torch.float32 and comps.feature_extractor is not None
