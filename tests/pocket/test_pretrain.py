"""`svdinst pocket pretrain`: a micro-sized run on the CPU, its folder, determinism and resume."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from svdinst.cli import main
from svdinst.errors import ModelNotFoundError, RunFolderError
from svdinst.models import loading as models
from svdinst.models.layouts import SDLayoutConfig, sd_layout_modules
from svdinst.pocket.card import SUMS, verify_checksums
from svdinst.pocket.config import PocketConfig
from svdinst.pocket.data import POCKET_PHOTOS, _content, apply_appearance, caption
from svdinst.pocket.pretrain import _encode, lr_at, pretrain
from svdinst.pocket.sampler import PocketCropSampler

# Widths small enough that 60 steps take seconds on one CPU thread; the pocket layout otherwise.
MICRO = replace(
    SDLayoutConfig.pocket(),
    unet_channels=(16, 16, 32),
    unet_norm_groups=8,
    vae_channels=(8, 8, 16),
    vae_norm_groups=8,
    text_dim=16,
    text_heads=2,
    vision_dim=16,
    vision_heads=2,
    vision_image_size=32,
    projection_dim=16,
)
WEIGHT_FILES = (
    "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
)


def micro_config(**overrides) -> PocketConfig:
    settings = dict(resolution=32, vae_steps=30, unet_steps=30, batch_size=8, warmup_steps=5,
                    vae_lr=2e-3, unet_lr=2e-3, model=MICRO)  # fmt: skip
    return PocketConfig(**{**settings, **overrides})


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pocket")
    config = micro_config()
    result = pretrain(config, root / "model", device="cpu", checkpoint_every=20, progress=False)
    return config, result


def test_folder_loads_offline_as_a_pipeline(micro_run):
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    _, result = micro_run
    comps = models.load_components(result.out)
    assert comps.unet.config.cross_attention_dim == comps.text_encoder.config.hidden_size == 16
    assert len(comps.tokenizer) == 49408  # the real CLIP vocabulary
    assert comps.vae.config.scaling_factor == pytest.approx(result.stats["scaling_factor"])
    assert comps.image_encoder.config.projection_dim == 16
    weights = (result.out / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert b"F16" in weights[:4096]  # stored in half precision (header names the dtype)

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(result.out, dtype=torch.float32)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    photo = Image.new("RGB", (32, 32), (200, 120, 40))
    out = pipe("a photo of a cat", image=photo, strength=0.5, num_inference_steps=4,
               generator=torch.Generator().manual_seed(0)).images[0]  # fmt: skip
    assert out.size == (32, 32)
    assert np.asarray(out).std() > 0


def test_training_lowers_the_vae_and_unet_losses(micro_run):
    """Held-out crops: trained VAE and EMA UNet beat the same-seed untrained networks."""
    from diffusers import DDPMScheduler

    config, result = micro_run
    comps = models.load_components(result.out, ["unet", "vae"])
    untrained = sd_layout_modules(replace(config.model, seed=config.seed))
    x, _ = PocketCropSampler(config.resolution, seed=123).sample(16)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        rec = {k: F.l1_loss(v.decode(v.encode(x).latent_dist.mean).sample, x).item()
               for k, v in (("trained", comps.vae), ("untrained", untrained["vae"]))}  # fmt: skip
        assert rec["trained"] < 0.85 * rec["untrained"], rec
        z = _encode(comps.vae, x, gen)[1] * comps.vae.config.scaling_factor
        noise = torch.randn(z.shape, generator=gen)
        t = torch.linspace(0, 999, len(z)).long()
        noisy = DDPMScheduler.from_pretrained(result.out, subfolder="scheduler").add_noise(
            z, noise, t
        )
        cond = torch.zeros(len(z), 77, 16)
        mse = {k: F.mse_loss(u(noisy, t, cond).sample, noise).item()
               for k, u in (("trained", comps.unet), ("untrained", untrained["unet"]))}  # fmt: skip
    assert mse["trained"] < 0.8 * mse["untrained"], mse
    assert mse["trained"] < 1.0, mse  # better than predicting zero noise


def test_scaling_factor_gives_unit_variance_latents(micro_run):
    config, result = micro_run
    vae = models.load_components(result.out, ["vae"]).vae
    x, _ = PocketCropSampler(config.resolution, seed=7).sample(16)
    with torch.no_grad():
        z = _encode(vae, x, torch.Generator().manual_seed(1))[1] * vae.config.scaling_factor
    assert vae.config.scaling_factor != pytest.approx(0.18215)
    assert 0.8 < z.std().item() < 1.25


def test_interrupted_run_resumed_equals_uninterrupted(micro_run, tmp_path):
    """Stopped in the VAE stage, then in the UNet stage, resumed twice: same bytes, same losses."""
    config, full = micro_run
    out, work = tmp_path / "model", tmp_path / "work"
    kw = dict(device="cpu", checkpoint_every=1000, progress=False)
    first = pretrain(config, out, work, stop_after_step=12, **kw)
    assert first.out is None and first.step == 12 and not out.exists()
    second = pretrain(config, out, work, resume=True, stop_after_step=config.vae_steps + 7, **kw)
    assert second.out is None and second.step == config.vae_steps + 7
    last = pretrain(config, out, work, resume=True, **kw)
    for name in WEIGHT_FILES:
        assert (out / name).read_bytes() == (full.out / name).read_bytes(), name
    losses = lambda w: [r.split(",")[1] for r in (w / "log.csv").read_text().splitlines()]  # noqa: E731
    assert losses(work) == losses(full.work)
    assert last.stats["scaling_factor"] == full.stats["scaling_factor"]


def _tensors(folder: Path, rel: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / rel)


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_continuing_keeps_the_vae_and_towers_and_starts_from_the_earlier_unet(micro_run, tmp_path):
    """init_from (pocket-v3's recipe): no VAE stage, the earlier VAE, towers and scaling factor
    kept bit for bit, and the UNet and its EMA start from the earlier UNet's weights."""
    config, first = micro_run
    # lr 1e-12: one AdamW step moves no weight by a half ulp of fp16, so the saved UNet is the start
    cont = replace(config, vae_steps=0, unet_steps=1, unet_lr=1e-12, init_from=str(first.out))
    result = pretrain(cont, tmp_path / "next", device="cpu", progress=False)
    fresh = pretrain(replace(cont, init_from="", vae_steps=1), tmp_path / "fresh", device="cpu",
                     progress=False)  # fmt: skip
    for rel in ("vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                "image_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors"):  # fmt: skip
        assert _same_tensors(_tensors(first.out, rel), _tensors(result.out, rel)), rel
    unet = "unet/diffusion_pytorch_model.safetensors"
    assert not _same_tensors(_tensors(fresh.out, unet), _tensors(result.out, unet))
    assert result.stats["scaling_factor"] == first.stats["scaling_factor"]
    log = (result.work / "log.csv").read_text().splitlines()
    assert len(log) == 2  # header + the one UNet step: no VAE step ran
    card = (result.out / "README.md").read_text()
    assert "--vae-steps 0 --unet-steps 1" in card.replace("\n  ", " ")
    assert f"--init-from {first.out}" in card and "frozen, with its scaling factor" in card


def test_a_new_unet_on_an_earlier_vae_keeps_the_vae_and_towers_only(micro_run, tmp_path):
    """init_unet=False (pocket-v5's recipe): the earlier VAE, towers and scaling factor are kept
    bit for bit, and a wider UNet, which could not load the earlier one, starts as built."""
    config, first = micro_run
    wide = replace(MICRO, unet_channels=(16, 32, 32))
    cont = replace(config, vae_steps=0, unet_steps=1, unet_lr=1e-12, init_from=str(first.out),
                   init_unet=False, model=wide)  # fmt: skip
    result = pretrain(cont, tmp_path / "wide", device="cpu", progress=False)
    for rel in ("vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                "image_encoder/model.safetensors"):  # fmt: skip
        assert _same_tensors(_tensors(first.out, rel), _tensors(result.out, rel)), rel
    assert result.stats["scaling_factor"] == first.stats["scaling_factor"]
    built = sd_layout_modules(replace(wide, seed=cont.seed))["unet"].half().state_dict()
    saved = _tensors(result.out, "unet/diffusion_pytorch_model.safetensors")
    assert saved.keys() == built.keys()
    for k, v in built.items():  # one AdamW step at lr 1e-12: at most one fp16 subnormal step
        torch.testing.assert_close(saved[k].float(), v.float(), rtol=0, atol=1e-7, msg=k)
    card = (result.out / "README.md").read_text()
    assert "continued from" not in card and "its text and image towers too" in card


def test_continuing_refuses_a_missing_or_other_layout_folder(micro_run, tmp_path):
    from svdinst.pocket.init_weights import init_folder

    config, first = micro_run
    assert init_folder("pocket-v2") == models.pocket_model_path("pocket-v2")
    with pytest.raises(ModelNotFoundError, match="neither a pocket model folder"):
        init_folder(str(tmp_path / "nowhere"))
    other = replace(config, vae_steps=0, init_from=str(first.out),
                    model=replace(MICRO, unet_channels=(16, 32, 32)))  # fmt: skip
    with pytest.raises(ModelNotFoundError, match="unet does not fit this recipe's unet"):
        pretrain(other, tmp_path / "other", device="cpu", progress=False)
    with pytest.raises(ValueError, match="0 with init_from"):
        replace(config, init_from=str(first.out))  # VAE steps with a kept VAE
    with pytest.raises(ValueError, match="≥ 1 when training from scratch"):
        replace(config, vae_steps=0)


def test_cli_says_in_one_line_when_flags_contradict_the_preset(tmp_path, capsys):
    args = ["pocket", "pretrain", "--out", str(tmp_path / "m"), "--device", "cpu"]
    assert main([*args, "--preset", "pocket-v2", "--init-from", "pocket-v2"]) == 2
    assert "0 with init_from" in capsys.readouterr().err
    assert main([*args, "--resolution", "20"]) == 2
    assert "must be a multiple of 16" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path):
    cfg = micro_config(vae_steps=3, unet_steps=3, batch_size=2)
    kw = dict(device="cpu", progress=False)
    a = pretrain(cfg, tmp_path / "a", **kw).out
    b = pretrain(cfg, tmp_path / "b", **kw).out
    c = pretrain(replace(cfg, seed=1), tmp_path / "c", **kw).out
    for name in WEIGHT_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
        assert (a / name).read_bytes() != (c / name).read_bytes(), name


def test_grouped_loss_reads_write_the_same_run(tmp_path):
    """Reading losses in groups (the GPU path) changes neither the log nor the weights."""
    cfg = micro_config(vae_steps=5, unet_steps=5, batch_size=2)
    kw = dict(device="cpu", progress=False)
    a = pretrain(cfg, tmp_path / "a", **kw)
    b = pretrain(cfg, tmp_path / "b", loss_read_every=3, **kw)
    rows = lambda r: [x.split(",")[:3] for x in (r.work / "log.csv").read_text().splitlines()]  # noqa: E731
    assert rows(a) == rows(b) and len(rows(a)) == 11  # header + 10 steps, in order
    for name in WEIGHT_FILES:
        assert (a.out / name).read_bytes() == (b.out / name).read_bytes(), name


def test_cli_pretrain_stops_resumes_and_writes_the_pocket_layout(tmp_path):
    """The real pocket widths at 16 px, one step per stage: time-limited stop (exit 3), resume."""
    out = tmp_path / "pocket"
    args = ["pocket", "pretrain", "--out", str(out), "--vae-steps", "1", "--unet-steps", "1",
            "--batch-size", "1", "--resolution", "16", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main([*args, "--max-minutes", "0"]) == 3  # stopped after one step, checkpointed
    assert not out.exists()
    assert main([*args, "--resume"]) == 0
    assert main(["pocket", "verify", str(out)]) == 0
    unet = models.load_components(out, ["unet"]).unet
    assert tuple(unet.config.block_out_channels) == SDLayoutConfig.pocket().unet_channels


def test_work_folder_guards(micro_run, tmp_path):
    config, full = micro_run
    with pytest.raises(RunFolderError, match="--resume"):  # a finished run's folder is taken
        pretrain(config, tmp_path / "x", full.work, device="cpu", progress=False)
    with pytest.raises(RunFolderError, match="vae_steps"):
        pretrain(replace(config, vae_steps=31), tmp_path / "x", full.work, resume=True,
                 device="cpu", progress=False)  # fmt: skip
    with pytest.raises(RunFolderError, match="no pocket run"):
        pretrain(config, tmp_path / "x", tmp_path / "empty", resume=True, device="cpu")


def test_checksums_verify_and_name_a_changed_file(micro_run, tmp_path, capsys):
    _, result = micro_run
    folder = shutil.copytree(result.out, tmp_path / "copy")
    assert verify_checksums(folder) == []
    assert main(["pocket", "verify", str(folder)]) == 0
    _assert_card_lists_the_checksums(folder)
    target = folder / WEIGHT_FILES[0]
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    assert main(["pocket", "verify", str(folder)]) == 1
    assert f"changed: {WEIGHT_FILES[0]}" in capsys.readouterr().err
    (folder / "vae" / "config.json").unlink()
    assert "missing: vae/config.json" in verify_checksums(folder)


def _assert_card_lists_the_checksums(folder: Path) -> None:
    card = (folder / "README.md").read_text()
    lines = (folder / SUMS).read_text().splitlines()
    assert len(lines) >= 15  # every pipeline file, the card included
    for line in lines:
        digest, name = line.split()
        assert name == "README.md" or f"| `{name}` | `{digest}` |" in card, name


def _thumb(image: Image.Image) -> np.ndarray:
    return np.asarray(ImageOps.fit(image.convert("RGB"), (32, 32)), dtype=np.float32) / 255


def test_training_photos_hold_no_style_image_and_no_test_photo(tmp_path):
    from svdinst.data import load_images, prepare_default_dataset
    from svdinst.data.default import PHOTOS

    held_out = {s.stem for s in PHOTOS if s.split == "test"}
    assert held_out and not held_out & {p.stem for p in POCKET_PHOTOS}
    with pytest.raises(ValueError, match="held-out"):
        _content("coffee", "a cup")
    sampler = PocketCropSampler(32, seed=0)
    photos = [Image.fromarray((p.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
              for p in sampler.pixels]  # fmt: skip
    assert len(photos) == len(POCKET_PHOTOS)
    data = prepare_default_dataset(tmp_path / "data")
    others = load_images(data / "style") + load_images(data / "test")
    assert len(others) == 7
    for photo in photos:
        assert np.abs(_thumb(photo) - _thumb(photo)).mean() == 0  # the measure can hit
        for other in others:
            assert np.abs(_thumb(photo) - _thumb(other)).mean() > 0.03


def test_captions_and_appearance_edits():
    assert caption("a cat", None, False) == "a photo of a cat"
    assert caption("coins", "blurry", True) == "a blurry grayscale photo of coins"
    assert caption("grass", "grayscale", False) == "a grayscale photo of grass"
    assert caption("a rocket", "warm-toned", False) == "a warm-toned photo of a rocket"
    x = torch.rand(1, 3, 96, 96)  # blur sigma is 2 px at 96 px
    noise = torch.zeros_like(x)
    gray = apply_appearance(x, "grayscale", noise)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    assert torch.allclose(apply_appearance(x, "dark", noise), x * 0.5)
    blurred = apply_appearance(x, "blurry", noise)
    assert float(blurred.diff(dim=-1).abs().mean()) < 0.5 * float(x.diff(dim=-1).abs().mean())
    with pytest.raises(ValueError, match="Unknown appearance"):
        apply_appearance(x, "mural", noise)


def test_sampler_is_deterministic_per_seed():
    a, ca = PocketCropSampler(32, seed=3).sample(6)
    b, cb = PocketCropSampler(32, seed=3).sample(6)
    c, _ = PocketCropSampler(32, seed=4).sample(6)
    assert torch.equal(a, b) and torch.equal(ca, cb) and not torch.equal(a, c)
    assert a.shape == (6, 3, 32, 32) and a.min() >= -1 and a.max() <= 1


def test_batched_crop_is_the_resized_photo_region():
    """A whole-photo crop of one photo equals an antialiased resize of that photo (no offsets)."""
    photo = POCKET_PHOTOS[0]
    sampler = PocketCropSampler(32, seed=0, photos=(photo,), max_side=128, supersample=4)
    h, w = sampler.pixels[0].shape[-2:]
    side, top = float(min(h, w)), 0.0
    left = float(sampler.boxes[0, 0, 0]) + (w - side) / 2
    one = torch.tensor
    crop = sampler._crop(one([top]), one([left]), one([side]), one([False]))
    ref = sampler.pixels[0][None, :, : int(side), int((w - side) / 2) : int((w - side) / 2 + side)]
    ref = F.interpolate(ref, size=(32, 32), mode="area")
    assert (crop - ref).abs().mean() < 0.02
    flipped = sampler._crop(one([top]), one([left]), one([side]), one([True]))
    assert torch.allclose(flipped, crop.flip(-1), atol=1e-5)


def test_styled_crops_come_with_style_captions():
    from svdinst.data.styles import STYLES

    styles = tuple(STYLES)[:2]
    sampler = PocketCropSampler(32, seed=1, photos=POCKET_PHOTOS[:2], styles=styles,
                                style_prob=1.0, caption_dropout=0.0, max_side=96)  # fmt: skip
    x, ids = sampler.sample(12)
    captions = [sampler.captions[i] for i in ids]
    assert all(c.endswith((" in woodcut", " in pencil sketch")) for c in captions), captions
    assert {c.rsplit(" in ", 1)[1] for c in captions} == set(styles)  # both drawn in 12
    # a woodcut crop holds two colours (ink, paper) up to the resampling's blends
    wood = next(k for k, c in enumerate(captions) if c.endswith("woodcut"))
    assert (x[wood].std(0) < 0.05).float().mean() > 0.9  # grey: channels agree
    plain = PocketCropSampler(32, seed=1, photos=POCKET_PHOTOS[:2], max_side=96)
    assert not any(" in " in c for c in plain.captions)
    with pytest.raises(ValueError, match="style_prob"):
        PocketCropSampler(32, seed=1, photos=POCKET_PHOTOS[:1], styles=styles, max_side=96)


def test_lr_schedule_warms_up_then_decays():
    assert lr_at(0, 100, 1.0, 10, 0.1) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, 10, 0.1) == pytest.approx(1.0)
    assert lr_at(10, 100, 1.0, 10, 0.1) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, 10, 0.1) == pytest.approx(0.1)


def test_config_rejects_a_resolution_the_layout_cannot_take():
    with pytest.raises(ValueError, match="multiple of 16"):
        PocketConfig(resolution=40)


def test_pocket_name_without_weights_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(models, "pocket_model_path", lambda: tmp_path / "pocket-v1")
    with pytest.raises(ModelNotFoundError, match="svdinst pocket pretrain --out DIR"):
        models.resolve_model("pocket")


def test_committed_pocket_weights_match_their_card():
    folder = models.pocket_model_path()
    if not (folder / "model_index.json").is_file():
        pytest.skip(f"no committed pocket weights in {folder} yet")
    assert verify_checksums(folder) == []
    _assert_card_lists_the_checksums(folder)
    sizes = sum(p.stat().st_size for p in Path(folder).rglob("*.safetensors"))
    assert sizes <= 30e6
    comps = models.load_components("pocket", ["unet", "vae"])
    assert comps.unet.dtype == torch.float32


def test_cli_pretrain_refuses_a_users_folder_before_training(tmp_path, capsys, monkeypatch):
    import svdinst.pocket.pretrain as pretrain_module

    out = tmp_path / "v"
    (out / "sub").mkdir(parents=True)
    (out / "thesis.tex").write_text("precious")
    # Fails before any model is built: the trainer is never constructed.
    monkeypatch.setattr(pretrain_module, "_Trainer", None)
    assert main(["pocket", "pretrain", "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and "--overwrite" in err[0]
    assert (out / "thesis.tex").read_text() == "precious" and (out / "sub").is_dir()
    assert not (tmp_path / "v-work").exists()
    (tmp_path / "f").write_text("x")
    assert main(["pocket", "pretrain", "--out", str(tmp_path / "f"), "--device", "cpu"]) == 2
    assert "f' is a file" in capsys.readouterr().err


def test_vae_check_scores_held_out_proxies_and_writes_its_figure(micro_run, tmp_path):
    from svdinst.data.default import PHOTOS
    from svdinst.pocket.vae_check import held_out_proxies, resize_reference, run_vae_check

    crops = held_out_proxies(32, per_photo=2)
    test_stems = {p.stem for p in PHOTOS if p.split == "test"}
    assert {n.rsplit("-c", 1)[0] for n in crops} == test_stems  # proxies of test photos only
    assert all(im.size == (32, 32) for im in crops.values())
    same = held_out_proxies(32, per_photo=2)
    assert all(np.array_equal(np.asarray(crops[n]), np.asarray(same[n])) for n in crops)
    flat = Image.new("RGB", (32, 32), (90, 120, 200))
    assert np.array_equal(np.asarray(resize_reference([flat], 4)[0]), np.asarray(flat))
    _, result = micro_run
    m = run_vae_check(result.out, tmp_path / "check", resolution=32)
    assert m["factor"] == 4 and m["vae"]["n"] == 12 and m["resolution"] == 32
    assert 0 < m["vae"]["ssim"] < 1 and m["resize_reference"]["psnr"] > m["vae"]["psnr"]
    assert (tmp_path / "check" / "pocket_vae_texture.json").is_file()
    assert Path(m["figure"]).is_file()


@pytest.mark.parametrize(
    "version", ["pocket-v1", "pocket-v2", "pocket-v3", "pocket-v4", "pocket-v5"]
)
def test_each_pocket_version_has_matching_layout_recipe_and_profile(version):
    """The one-line switch (POCKET_VERSION) is safe: layout, recipe and profile agree per version."""
    from svdinst.course.profiles import POCKET_PROFILES
    from svdinst.data.styles import PROXY_TECHNIQUES, STYLES_V2
    from svdinst.models.layout_config import POCKET_LAYOUTS, POCKET_VERSION
    from svdinst.pocket.card import _techniques

    layout = POCKET_LAYOUTS[version]()
    recipe = PocketConfig.preset(version)
    profile = POCKET_PROFILES[version]
    factor = 2 ** (len(layout.vae_channels) - 1)
    assert layout.version == version and recipe.model == layout
    assert profile.resolution == recipe.resolution == layout.unet_sample_size * factor
    assert POCKET_VERSION in POCKET_LAYOUTS and models.pocket_model_path().name == POCKET_VERSION
    if version in ("pocket-v2", "pocket-v3", "pocket-v5"):  # v2/v3 shipped, v5 their mix
        assert recipe.styles == STYLES_V2 and _techniques(recipe.styles) == ""
    if version == "pocket-v4":  # its card says which styles share a technique with the proxy
        assert all(name in _techniques(recipe.styles) for name in PROXY_TECHNIQUES)
    if version != "pocket-v1":
        assert len(profile.training_seeds) >= 5 and len(recipe.styles) >= 6
        assert factor == 4 and recipe.resolution >= 128
    if recipe.init_from:  # continues an earlier version: the same networks, only named anew
        earlier = POCKET_LAYOUTS[recipe.init_from]()
        same = {"version": version, "label": layout.label}
        if not recipe.init_unet:  # a new UNet: only its widths may differ
            same["unet_channels"] = layout.unet_channels
        assert replace(earlier, **same) == layout
