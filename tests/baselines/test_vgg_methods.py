"""Method-specific checks of the VGG-based baselines (StyTr², AdaIN, fast style transfer).

Architecture sizes against the papers' layer lists, the loss math against hand computations,
VGG weight resolution (never random unless asked for by name), and one short CPU training run
per method (32 px, tiny widths, the default Inception-trunk loss network). The
registry-wide interface checks (save → load, shapes for every method) are in test_baselines.py.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from svdinst.baselines import vgg as vggmod
from svdinst.baselines.adain import AdaIN, AdaINConfig
from svdinst.baselines.fast_style import FastStyle, TransformerNet, gram_matrix, perceptual_losses
from svdinst.baselines.stytr2 import StyTr2, StyTr2Config, normalize, stytr2_lr
from svdinst.baselines.stytr2_net import StyTr2Net
from svdinst.baselines.vgg import (
    VGGFeatures,
    adain,
    mean_std,
    mean_std_loss,
    vgg_mirror_decoder,
)
from svdinst.errors import SvdinstError


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- architectures


def test_transformer_net_has_johnsons_parameter_count():
    assert n_params(TransformerNet()) == 1_679_235  # pytorch/examples' TransformerNet


def test_adain_decoder_has_the_published_parameter_count():
    # 9 convs: 512→256, 3×(256→256), 256→128, 128→128, 128→64, 64→64, 64→3 (3×3, with bias).
    by_hand = sum(9 * i * o + o for i, o in [(512, 256), *[(256, 256)] * 3, (256, 128),
                                              (128, 128), (128, 64), (64, 64), (64, 3)])  # fmt: skip
    assert by_hand == 3_505_219
    assert n_params(vgg_mirror_decoder()) == 3_505_219
    assert n_params(AdaIN(AdaINConfig(loss_backbone="vgg")).decoder) == 3_505_219
    # The Inception substitute's encoder ends at Mixed_5b (256 channels): only the first conv changes.
    assert n_params(AdaIN().decoder) == 3_505_219 - 9 * (512 - 256) * 256


def test_stytr2_full_size_matches_the_authors_layer_list():
    d, ff = 512, 2048
    mha = 4 * d * d + 4 * d  # in_proj (3 d×d + bias) + out_proj
    ffn = d * ff + ff + ff * d + d
    enc_layer, dec_layer = mha + ffn + 2 * 2 * d, 2 * mha + ffn + 3 * 2 * d
    net = StyTr2Net()
    assert n_params(net.encoder_c) == n_params(net.encoder_s) == 3 * enc_layer
    assert n_params(net.decoder) == 3 * dec_layer
    assert n_params(net.embed) == 3 * 8 * 8 * d + d  # 8×8 patch projection
    assert n_params(net.cape) == d * d + d  # CAPE's 1×1 conv
    assert n_params(net) == 35_394_115


def test_vgg_layer_indices_name_the_right_relus():
    from torchvision.models import vgg

    # Walk torchvision's layer configuration: an int is Conv2d + ReLU, "M" is one MaxPool2d.
    for arch, cfg, table in [("vgg19", "E", vggmod.VGG19_RELU), ("vgg16", "D", vggmod.VGG16_RELU)]:
        names, index, stage, conv = {}, 0, 1, 0
        for item in vgg.cfgs[cfg]:
            if item == "M":
                index, stage, conv = index + 1, stage + 1, 0
            else:
                conv += 1
                names[f"relu{stage}_{conv}"] = index + 1
                index += 2
        assert all(names[k] == v for k, v in table.items()), arch


# ----------------------------------------------------------------------------- loss math


def test_gram_matrix_by_hand():
    feat = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)  # C=2, H=1, W=2
    expected = torch.tensor([[1 + 4, 3 + 8], [3 + 8, 9 + 16]]) / 4.0  # F Fᵀ / (C·H·W)
    torch.testing.assert_close(gram_matrix(feat)[0], expected)


def test_mean_std_and_adain_by_hand():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    mean, std = mean_std(x)
    var = ((x - 2.5) ** 2).sum() / 3  # unbiased, as the reference code
    assert mean.item() == pytest.approx(2.5)
    assert std.item() == pytest.approx(math.sqrt(var + 1e-5))
    out = adain(x, torch.tensor(10.0).view(1, 1, 1, 1), torch.tensor(2.0).view(1, 1, 1, 1))
    torch.testing.assert_close(out, (x - 2.5) / math.sqrt(var + 1e-5) * 2 + 10)


def test_adain_output_has_the_style_statistics():
    gen = torch.Generator().manual_seed(0)
    content = torch.randn(2, 8, 6, 5, generator=gen) * 3 + 1
    style = torch.rand(2, 8, 7, 7, generator=gen) * 5
    s_mean, s_std = mean_std(style)
    o_mean, o_std = mean_std(adain(content, s_mean, s_std))
    torch.testing.assert_close(o_mean, s_mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(o_std, s_std, atol=1e-3, rtol=1e-3)
    assert not torch.allclose(mean_std(content)[1], s_std, atol=1e-2)


def test_mean_std_loss_by_hand():
    a = torch.tensor([0.0, 2.0]).view(1, 1, 1, 2)  # mean 1, var 2
    b = torch.tensor([1.0, 1.0]).view(1, 1, 1, 2)  # mean 1, var 0
    expected = 0.0 + (math.sqrt(2 + 1e-5) - math.sqrt(1e-5)) ** 2
    assert mean_std_loss([a, a], [b, a]).item() == pytest.approx(expected, rel=1e-5)


def test_perceptual_losses_use_relu2_2_for_content_and_all_grams_for_style():
    gen = torch.Generator().manual_seed(1)
    out = [torch.rand(1, c, 4, 4, generator=gen) for c in (2, 3, 4, 5)]
    ref = [f.clone() for f in out]
    ref[0] += 1.0  # a difference at relu1_2 must not change the content loss
    grams = [gram_matrix(f) for f in out]
    content, style = perceptual_losses(out, ref, grams, 1e5, 1e10)
    assert content.item() == 0.0 and style.item() == 0.0
    ref[1] += 0.5  # relu2_2: content loss = w · mean((−0.5)²)
    grams[3] = grams[3] + 0.1  # one layer's Gram off by 0.1 everywhere
    content, style = perceptual_losses(out, ref, grams, 1e5, 1e10)
    assert content.item() == pytest.approx(1e5 * 0.25)
    assert style.item() == pytest.approx(1e10 * 0.01, rel=1e-4)


def test_stytr2_content_normalisation_and_lr_schedule():
    x = torch.rand(2, 3, 5, 5) * 4 + 2
    mean, std = mean_std(normalize(x))
    torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-5, rtol=0)
    torch.testing.assert_close(std, torch.ones_like(std), atol=1e-3, rtol=0)
    cfg = StyTr2Config()
    for i in (0, 1, 4_321, 9_999):  # train.py: warmup_learning_rate
        assert stytr2_lr(cfg, i) == pytest.approx(5e-4 * 0.1 * (1.0 + 3e-4 * i))
    for i in (10_000, 25_000):  # train.py: adjust_learning_rate
        assert stytr2_lr(cfg, i) == pytest.approx(2e-4 / (1.0 + 1e-5 * (i - 1e4)))


def test_stytr2_output_depends_on_style_and_cape_on_content():
    torch.manual_seed(0)
    net = StyTr2Net(d_model=16, n_heads=2, dim_feedforward=32, decoder_widths=(8, 8, 8)).eval()
    c1, c2, s1, s2 = (torch.rand(1, 3, 32, 24) for _ in range(4))
    with torch.no_grad():
        out = net(c1, s1)
        assert out.shape == c1.shape
        assert not torch.allclose(out, net(c1, s2))
        e1, e2 = net.embed(c1), net.embed(c2)
        assert net.cape(e1).shape == e1.shape
        assert not torch.allclose(net.cape(e1), net.cape(e2))


def test_stytr2_losses_are_wired_to_the_right_images():
    from svdinst.baselines.stytr2 import STYTR2_LAYERS, stytr2_losses

    vgg = VGGFeatures("vgg19", STYTR2_LAYERS, "random")  # the wiring, not the features
    gen = torch.Generator().manual_seed(2)
    c, s = torch.rand(2, 3, 32, 32, generator=gen), torch.rand(2, 3, 32, 32, generator=gen)
    fc, fs = vgg(c), vgg(s)
    # A "network" that returns its content input: I_cs = I_c, I_cc = I_c, I_ss = I_s.
    keep = stytr2_losses(lambda content, style: content, vgg, c, s)
    assert keep["content"].item() == keep["id1"].item() == keep["id2"].item() == 0.0
    assert keep["style"].item() == pytest.approx(mean_std_loss(fc, fs).item(), rel=1e-5)
    # One that returns its style input: I_cs = I_s, and I_cc, I_ss are again the inputs.
    swap = stytr2_losses(lambda content, style: style, vgg, c, s)
    expected = sum(((normalize(fs[i]) - normalize(fc[i])) ** 2).mean() for i in (3, 4))
    assert swap["content"].item() == pytest.approx(expected.item(), rel=1e-5)  # relu4_1 + relu5_1
    assert swap["style"].item() == 0.0 and swap["id1"].item() == 0.0


# ----------------------------------------------------------------------------- VGG weights


def test_vgg_without_weights_is_an_error_never_random(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # empty cache, offline
    with pytest.raises(SvdinstError, match=r"No ImageNet vgg19 weights.*inception"):
        VGGFeatures("vgg19", ("relu1_1", "relu2_1"))
    b = VGGFeatures("vgg19", ("relu1_1", "relu2_1"), "random")  # only when asked for by name
    assert b.weights_source == "random"


def test_vgg_weights_from_file_and_from_the_torch_cache(monkeypatch, tmp_path):
    donor = VGGFeatures("vgg16", ("relu1_2",), "random")
    with torch.no_grad():
        for p in donor.parameters():
            p.add_(0.01)
    file = tmp_path / "checkpoints" / vggmod.TORCHVISION_FILES["vgg16"]
    file.parent.mkdir()
    torch.save({f"features.{k}": v for k, v in donor.features.state_dict().items()}, file)
    x = torch.rand(1, 3, 8, 8)
    explicit = VGGFeatures("vgg16", ("relu1_2",), file)
    assert explicit.weights_source == f"imagenet:{file}"
    torch.testing.assert_close(explicit(x)[0], donor(x)[0])
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    cached = VGGFeatures("vgg16", ("relu1_2",))  # found in the cache
    assert cached.weights_source == f"imagenet:{file}"
    with pytest.raises(SvdinstError, match="does not exist"):
        VGGFeatures("vgg16", ("relu1_2",), tmp_path / "missing.pth")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(SvdinstError, match="not torchvision vgg16"):
        VGGFeatures("vgg16", ("relu1_2",), tmp_path / "wrong.pth")


def test_vgg_is_fetched_with_network_and_an_error_line_without(monkeypatch, tmp_path):
    from svdinst.models import backbones

    monkeypatch.delenv("HF_HUB_OFFLINE")  # as on Colab
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    donor = VGGFeatures("vgg19", ("relu1_1",), "random")
    with torch.no_grad():
        for p in donor.parameters():
            p.add_(0.01)
    state = {f"features.{k}": v for k, v in donor.features.state_dict().items()}
    asked = []
    monkeypatch.setattr(backbones, "download_weights", lambda arch: asked.append(arch) or state)
    fetched = VGGFeatures("vgg19", ("relu1_1",))
    assert asked == ["vgg19"]
    assert fetched.weights_source == f"imagenet:{tmp_path / 'checkpoints' / 'vgg19-dcbb9e9d.pth'}"
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(fetched(x)[0], donor(x)[0])

    def no_network(arch):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(backbones, "download_weights", no_network)
    with pytest.raises(SvdinstError) as caught:
        VGGFeatures("vgg19", ("relu1_1",))
    line = str(caught.value)
    assert "\n" not in line and "Network is unreachable" in line
    assert (
        "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in line and "--vgg-weights" in line
    )


# ----------------------------------------------------------------------------- short training


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("vgg_methods")
    rng = np.random.default_rng(0)
    for sub, n in (("content", 3), ("style", 2)):
        (root / sub).mkdir()
        for i in range(n):
            ramp = np.linspace(0, 255, 40 + 4 * i)[None, :, None]
            img = ramp * rng.uniform(0.3, 1.0, (36, 1, 3)) + rng.normal(0, 20, (36, 40 + 4 * i, 3))
            Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(root / sub / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def trained(folders):
    """Each method trained 2 steps at 32 px (the Inception trunk), saved to folders/<name>."""
    out = {}
    for cls in (FastStyle, AdaIN, StyTr2):
        model = cls(cls.tiny_config(32))
        losses = model.fit(folders / "content", folders / "style", 2, out_dir=folders / cls.name)
        model.train_steps = 2
        model.save(folders / cls.name)
        out[cls.name] = (model, losses)
    return out


@pytest.mark.parametrize("name", ["fast_style", "adain", "stytr2"])
def test_two_steps_train_and_record_the_backbone(trained, folders, name):
    model, losses = trained[name]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    saved = json.loads((folders / name / "config.json").read_text())
    vgg = "VGG-16" if name == "fast_style" else "VGG-19"
    assert saved["backbone"] == f"tf-fid-inception-trunk (substitute for {vgg})"
    assert saved["train_steps"] == 2 and saved["loss_backbone"] == "inception"
    photos = [Image.open(p).convert("RGB") for p in sorted((folders / "content").iterdir())]
    style = [Image.open(folders / "style" / "0.png").convert("RGB")]
    outs = model.stylize(photos, style)
    assert [o.size for o in outs] == [p.size for p in photos]
    assert all(o.mode == "RGB" for o in outs)


def test_logged_learning_rates_follow_the_published_schedules(trained, folders):
    def lrs(name):
        rows = (folders / name / "log.csv").read_text().splitlines()[1:]
        return [float(r.split(",")[2]) for r in rows]

    assert lrs("adain") == pytest.approx([1e-4, 1e-4 / (1 + 5e-5)])
    assert lrs("stytr2") == pytest.approx([5e-5, 5e-5 * (1 + 3e-4)])
    assert lrs("fast_style") == pytest.approx([1e-3, 1e-3])


def test_arbitrary_style_methods_need_style_and_alpha_blends(trained, folders):
    photo = [Image.open(folders / "content" / "0.png").convert("RGB")]
    for name in ("adain", "stytr2"):
        with pytest.raises(SvdinstError, match="--style"):
            trained[name][0].stylize(photo)
    model = trained["adain"][0]
    x, s = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 40, 32)
    with torch.no_grad():
        feat = model.encoder(x)[-1]
        target = adain(feat, *mean_std(model.encoder(s)[-1]))
        assert not torch.allclose(feat, target)
        for alpha in (0.0, 0.3, 1.0):  # Eq. 14: g((1 − α) f(c) + α t)
            expected = model.decoder(alpha * target + (1 - alpha) * feat)
            torch.testing.assert_close(model.transfer(x, s, alpha), expected)
    with pytest.raises(SvdinstError, match="alpha"):
        AdaINConfig(alpha=1.5)


def test_fast_style_target_is_the_mean_gram_of_the_style_images(trained, folders):
    model = trained["fast_style"][0]
    targets = model.style_grams(folders / "style")
    vgg = model.loss_network()
    from svdinst.baselines.common import ImageSampler

    side = model.config.resolution
    images = ImageSampler(folders / "style", side, load_size=side, value_range=(0.0, 1.0)).images
    per_image = [[gram_matrix(f) for f in vgg(im[None])] for im in images]
    for layer, target in enumerate(targets):
        torch.testing.assert_close(target, (per_image[0][layer] + per_image[1][layer]) / 2)


def test_resumed_training_continues_exactly(folders, tmp_path):
    cfg, c, s = FastStyle.tiny_config(32), folders / "content", folders / "style"
    straight = FastStyle(cfg).fit(c, s, 2, seed=3)
    first = FastStyle(cfg).fit(c, s, 1, out_dir=tmp_path, checkpoint_every=1, seed=3)
    rest = FastStyle(cfg).fit(c, s, 2, out_dir=tmp_path, resume=True, seed=3)
    assert len(rest) == 1
    assert first + rest == pytest.approx(straight, rel=1e-6)
