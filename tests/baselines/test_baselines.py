"""Every registered baseline, from one table: train, stylize, save → load; plus GAN specifics.

Table-driven over :data:`svdinst.baselines.REGISTRY`, so a new method is tested by registering it.
Networks are the ``tiny_config`` widths at 32 px on CPU; full-size parameter counts are computed
without training.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from svdinst.baselines import REGISTRY, get_baseline
from svdinst.baselines.common import (
    ImagePool,
    checkpoint_objects,
    fit_loop,
    latest_checkpoint,
    linear_decay,
    linear_decay_scheduler,
    to_pil,
    to_tensor,
    translate_each,
)
from svdinst.errors import SvdinstError

NAMES = sorted(REGISTRY)
GANS = ["balagan", "cyclegan", "stargan"]
RES = 32


def _photo(seed: int, size: tuple[int, int]) -> Image.Image:
    """A smooth colour gradient with a bright disc: structure, but nothing like a mural."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    rng = np.random.default_rng(seed)
    base = np.stack([xx, yy, 1 - xx * yy], -1) * rng.uniform(0.5, 1, 3)
    disc = ((xx - 0.5) ** 2 + (yy - 0.4) ** 2 < 0.05)[..., None]
    return Image.fromarray((np.clip(base + 0.4 * disc, 0, 1) * 255).astype(np.uint8))


def _mural(seed: int, size: int = 48) -> Image.Image:
    """Blocks of saturated green/blue pigment: far from the photos' colours."""
    rng = np.random.default_rng(100 + seed)
    palette = np.array([[20, 150, 90], [30, 80, 190], [10, 120, 140]], dtype=np.uint8)
    blocks = palette[rng.integers(0, 3, (size // 8, size // 8))]
    return Image.fromarray(np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8)))


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("baseline-data")
    (root / "content").mkdir()
    (root / "style").mkdir()
    for i in range(3):
        _photo(i, (48 + 4 * i, 40)).save(root / "content" / f"photo{i}.png")
    for i in range(2):
        _mural(i).save(root / "style" / f"mural{i}.png")
    return root / "content", root / "style"


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [_photo(7, (37, 45)), _photo(8, (33, 32))]  # odd sizes exercise padding/cropping


@pytest.fixture(scope="module")
def murals() -> list[Image.Image]:
    return [_mural(0), _mural(1)]


def _parameters(model) -> dict[str, torch.Tensor]:
    """Every parameter of every network a baseline holds (generators and discriminators)."""
    out = {}
    for attr, value in vars(model).items():
        if isinstance(value, torch.nn.Module):
            out.update({f"{attr}.{k}": v.detach().clone() for k, v in value.named_parameters()})
    return out


@pytest.mark.parametrize("name", NAMES)
def test_two_steps_then_save_load_reproduces_stylize(name, folders, photos, murals, tmp_path):
    cls = get_baseline(name)
    model = cls(cls.tiny_config(resolution=RES), device="cpu")
    before = _parameters(model)
    losses = model.fit(*folders, steps=2, seed=0)
    if cls.needs_training:
        assert len(losses) == 2 and all(math.isfinite(x) for x in losses), losses
        after = _parameters(model)
        assert any(not torch.equal(before[k], after[k]) for k in before), "no weight changed"
    else:
        assert losses == []
    style = murals if cls.uses_style_at_inference else None
    out = model.stylize(photos, style)
    assert [im.size for im in out] == [im.size for im in photos]
    assert all(im.mode == "RGB" for im in out)
    arrays = [np.asarray(im) for im in out]
    assert all(a.dtype == np.uint8 and a.std() > 0 for a in arrays), "constant output"
    model.save(tmp_path / "run")
    again = cls.load(tmp_path / "run", device="cpu").stylize(photos, style)
    for a, b in zip(arrays, again, strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))


@pytest.mark.parametrize("name", [n for n in NAMES if REGISTRY[n].uses_style_at_inference])
def test_arbitrary_style_methods_refuse_to_run_without_style(name, photos):
    cls = get_baseline(name)
    with pytest.raises(SvdinstError):
        cls(cls.tiny_config(resolution=RES)).stylize(photos, None)


def test_full_size_parameter_counts_match_the_published_architectures():
    from svdinst.baselines.cyclegan import PatchDiscriminator, ResnetGenerator
    from svdinst.baselines.stargan import Generator

    def count(net: torch.nn.Module) -> int:
        return sum(p.numel() for p in net.parameters())

    assert count(ResnetGenerator(64, 9)) == 11_378_179  # CycleGAN's "G_A: 11.378 M"
    assert count(PatchDiscriminator(64, 3)) == 2_764_737  # CycleGAN's "D_A: 2.765 M"
    assert count(Generator(64, c_dim=5, repeat_num=6)) == 8_430_528  # StarGAN, CelebA's 5 labels


@pytest.mark.parametrize("name", GANS)
def test_resume_from_a_checkpoint_continues_exactly(name, folders, tmp_path):
    cls = get_baseline(name)
    config = cls.tiny_config(resolution=RES)
    straight = cls(config).fit(*folders, steps=3, seed=3)
    cls(config).fit(*folders, steps=1, seed=3, out_dir=tmp_path, checkpoint_every=1)
    assert latest_checkpoint(tmp_path).name == "step-000001"
    resumed = cls(config).fit(*folders, steps=3, seed=3, out_dir=tmp_path, resume=True)
    assert len(resumed) == 2  # steps 2 and 3 only
    # Same numbers only if nets, optimizers, samplers, pools and RNG states all came back.
    assert resumed == pytest.approx(straight[1:], rel=1e-5, abs=1e-6)
    log = (tmp_path / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["1", "2", "3"]


def test_magenta_moves_colours_toward_the_style(photos):
    model = get_baseline("magenta")()
    style = [_mural(0, 256)]
    photo = _photo(1, (96, 80))
    out = model.stylize([photo], style)[0]
    target = np.asarray(style[0], dtype=float).reshape(-1, 3).mean(0)

    def distance(im: Image.Image) -> float:
        return float(np.linalg.norm(np.asarray(im, dtype=float).reshape(-1, 3).mean(0) - target))

    assert out.size == photo.size
    assert distance(out) < 0.7 * distance(photo)


def test_unknown_name_lists_the_registry():
    with pytest.raises(SvdinstError, match="cyclegan"):
        get_baseline("cyclegann")


# --- shared utilities -------------------------------------------------------------------------


def test_linear_decay_is_constant_then_linear_to_zero():
    factors = [linear_decay(s, total=200) for s in (0, 99, 100, 150, 199, 200)]
    assert factors == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.01, 0.0])
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2e-4)
    sched = linear_decay_scheduler(opt, total=4)
    lrs = []
    for _ in range(4):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([2e-4, 2e-4, 2e-4, 1e-4])


def test_resume_with_more_steps_follows_the_new_schedule(tmp_path):
    def run(total: int, steps: int, resume: bool) -> list[float]:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        sched = linear_decay_scheduler(opt, total=total)
        seen = []

        def step(_: int) -> dict[str, float]:
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
            return {"loss": 0.0}

        objects = {"opt": opt, "sched": sched}
        fit_loop(step, steps, objects=objects, out_dir=tmp_path, checkpoint_every=2, resume=resume)
        return seen

    assert run(total=2, steps=2, resume=False) == [1.0, 1.0]  # its lr ends at 0
    assert run(total=8, steps=4, resume=True) == [1.0, 1.0]  # steps 3-4 of 8: constant half


def test_image_pool_fills_then_swaps_half_the_time():
    pool = ImagePool(size=2, seed=0)
    a, b = torch.zeros(1, 1), torch.ones(1, 1)
    assert torch.equal(pool.query(a), a) and torch.equal(pool.query(b), b)  # filling
    outs = [float(pool.query(torch.full((1, 1), 2.0 + i))) for i in range(200)]
    from_history = sum(o != 2.0 + i for i, o in enumerate(outs))
    assert 60 < from_history < 140  # p = 1/2 of returning a stored image
    assert ImagePool(size=0).query(a) is a


def test_checkpoints_are_atomic_and_the_newest_complete_one_wins(tmp_path):
    net = torch.nn.Linear(2, 2)
    checkpoint_objects(tmp_path, 5, {"net": net})
    checkpoint_objects(tmp_path, 10, {"net": net})
    (tmp_path / "checkpoints" / "step-000020").mkdir()  # interrupted: no state file
    assert latest_checkpoint(tmp_path).name == "step-000010"
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


def test_tensor_conversions_round_trip_and_translate_each_keeps_sizes(photos):
    x = to_tensor(photos[0])
    assert x.shape == (1, 3, 45, 37) and x.min() >= -1 and x.max() <= 1
    np.testing.assert_array_equal(np.asarray(to_pil(x)[0]), np.asarray(photos[0]))
    seen = []
    out = translate_each(photos, lambda t, i: seen.append(t.shape) or -t, "cpu", multiple=8)
    assert [tuple(s[-2:]) for s in seen] == [(48, 40), (32, 40)]  # (H, W) padded to 8
    assert [im.size for im in out] == [im.size for im in photos]
    inverted = 255 - np.asarray(photos[1]).astype(int)
    assert np.abs(np.asarray(out[1]).astype(int) - inverted).max() <= 1


# --- the GAN pieces, by hand ------------------------------------------------------------------


def test_lsgan_loss_by_hand():
    from svdinst.baselines.cyclegan import lsgan_loss

    pred = torch.tensor([0.5, 1.5])
    assert float(lsgan_loss(pred, True)) == pytest.approx((0.25 + 0.25) / 2)
    assert float(lsgan_loss(pred, False)) == pytest.approx((0.25 + 2.25) / 2)


def test_patchgan_sees_70_by_70_patches():
    from svdinst.baselines.cyclegan import PatchDiscriminator

    d = PatchDiscriminator(ndf=4, n_layers=3)
    for m in d.modules():  # positive weights: no accidental zero gradients inside the field
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.constant_(m.weight, 0.01)
    d = torch.nn.Sequential(*[m for m in d.model if not isinstance(m, torch.nn.InstanceNorm2d)])
    x = torch.zeros(1, 3, 256, 256, requires_grad=True)
    out = d(x)
    assert out.shape[-2:] == (30, 30)  # the paper's 30×30 output for 256-px inputs
    out[0, 0, 15, 15].backward()
    rows = x.grad[0].abs().sum((0, 2)).nonzero().flatten()
    assert int(rows.max() - rows.min() + 1) == 70


def test_gradient_penalty_of_a_linear_critic():
    from svdinst.baselines.stargan import gradient_penalty

    w = torch.randn(1, 3, 4, 4)
    x_hat = torch.randn(5, 3, 4, 4, requires_grad=True)
    out = (x_hat * w).sum((1, 2, 3))  # ∇ = w for every sample
    assert float(gradient_penalty(out, x_hat)) == pytest.approx(float((w.norm() - 1) ** 2))


def test_stargan_heads_and_conditioning():
    from svdinst.baselines.stargan import Discriminator, Generator

    d = Discriminator(image_size=256, conv_dim=4, c_dim=2, repeat_num=6)
    src, cls = d(torch.randn(2, 3, 256, 256))
    assert src.shape == (2, 1, 4, 4) and cls.shape == (2, 2)
    g = Generator(conv_dim=4, c_dim=2, repeat_num=1)
    x = torch.randn(1, 3, 16, 16)
    to_photo, to_mural = g(x, torch.tensor([[1.0, 0.0]])), g(x, torch.tensor([[0.0, 1.0]]))
    assert to_photo.shape == x.shape and not torch.allclose(to_photo, to_mural)


def test_balagan_clusters_photos_by_colour_and_translates_with_the_class_code():
    from svdinst.baselines.balagan import BalaGAN, cluster_photos

    red, blue = torch.tensor([1.0, -1, -1]), torch.tensor([-1.0, -1, 1])
    images = [c[:, None, None] + 0.05 * torch.randn(3, 8, 8) for c in (red, blue, red, blue)]
    labels = cluster_photos(images, k=2)
    assert labels[0] == labels[2] != labels[1] == labels[3]
    assert len(set(cluster_photos(images, k=8))) <= 4  # k is capped at the number of photos
    model = BalaGAN(BalaGAN.tiny_config(resolution=RES))
    x = torch.randn(1, 3, 32, 32)
    codes = torch.randn(2, model.config.latent_dim)
    with torch.no_grad():
        a, b = model.G(x, codes[:1]), model.G(x, codes[1:])
    assert a.shape == x.shape and not torch.allclose(a, b)  # the class code steers AdaIN


def test_zero_steps_are_refused_and_save_no_model(folders, tmp_path, capsys):
    from svdinst.cli import main
    from svdinst.formats.run_folder import RunFolder

    with pytest.raises(SvdinstError, match="≥ 1"):
        fit_loop(lambda _: {"loss": 0.0}, 0, objects={})
    out = tmp_path / "adain"
    argv = ["baseline", "adain", "train", "--content", str(folders[0]), "--style",
            str(folders[1]), "--steps", "0", "--out", str(out), "--size", "tiny"]  # fmt: skip
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("svdinst: error: --steps must be ≥ 1")
    assert not RunFolder(out).model.exists()  # stylize cannot pick up an untrained model
