"""Thin SVD of the wrapped weights: gram vs LAPACK, overlapped lanes, the cache, layer kinds."""

from __future__ import annotations

import pytest
import torch
from spectral_toys import EXACT, Plain

from svdinst.spectral import (
    add_spectral_shifts,
    spectral_layers,
    spectral_shift_layout,
)
from svdinst.spectral.svd import decompose_matrices


def test_gram_and_svd_agree_and_reconstruct():
    gen = torch.Generator().manual_seed(0)
    mats = {
        "tall": torch.randn(40, 12, generator=gen),
        "wide": torch.randn(12, 40, generator=gen),
        "wide2": torch.randn(12, 40, generator=gen),
        "rankdef": torch.randn(20, 3, generator=gen) @ torch.randn(3, 30, generator=gen),
    }
    ref = decompose_matrices(mats, method="svd", progress=False)
    gram = decompose_matrices(mats, method="gram", progress=False)
    for n, m in mats.items():
        U, S, Vh = gram[n]
        torch.testing.assert_close(S, ref[n][1], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close((U * S) @ Vh, m, rtol=1e-5, atol=1e-5)
        eye = torch.eye(S.numel())
        torch.testing.assert_close(U.T @ U, eye, rtol=0, atol=1e-5)
        torch.testing.assert_close(Vh @ Vh.T, eye, rtol=0, atol=1e-5)


def test_overlapped_svd_equals_serial(monkeypatch):
    """Work units shared by the main lane and CPU lanes: every layer gets its own factors."""
    import svdinst.spectral.svd as svd

    monkeypatch.setattr(svd, "CPU_MAX_SIDE", 24)  # the 32-row group stays on the main lane
    gen = torch.Generator().manual_seed(4)
    shapes = [(32, 48)] * 6 + [(16, 24)] * 9 + [(24, 8)] * 5 + [(40, 3, 2, 2)]
    mats = {
        f"w{i}": torch.randn(sh, generator=gen).reshape(sh[0], -1) for i, sh in enumerate(shapes)
    }
    serial = decompose_matrices(mats, method="gram", progress=False, cpu_workers=0)
    overlapped = decompose_matrices(mats, method="gram", progress=False, cpu_workers=3)
    assert list(overlapped) == list(mats)
    for n, m in mats.items():
        for a, b in zip(overlapped[n], serial[n]):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        U, S, Vh = overlapped[n]
        torch.testing.assert_close((U * S) @ Vh, m, rtol=1e-5, atol=1e-5)


def test_svd_cache_is_reused(monkeypatch, tmp_path):
    import svdinst.spectral.svd as svd

    monkeypatch.setattr(svd, "cache_dir", lambda: tmp_path)  # a shared cache may hold old keys
    first = Plain()
    add_spectral_shifts(first, base_model="plain-cache-test")
    files = list((svd.cache_dir() / "spectral").glob("plain-cache-test-*.safetensors"))
    assert len(files) == 1

    def boom(*args, **kwargs):
        raise AssertionError("decomposed again instead of reading the cache")

    monkeypatch.setattr(svd, "decompose_matrices", boom)
    second = Plain()
    add_spectral_shifts(second, base_model="plain-cache-test")
    for n, layer in spectral_layers(second).items():
        assert torch.equal(layer.U, spectral_layers(first)[n].U)
    changed = Plain()
    with torch.no_grad():
        changed.c1.weight.mul_(2)  # other weights, same id: a new fingerprint, not a stale hit
    with pytest.raises(AssertionError, match="decomposed again"):
        add_spectral_shifts(changed, base_model="plain-cache-test")


def test_svd_cache_key_ignores_the_dtype(monkeypatch, tmp_path):
    """Issue 13, finding 3: a float16 copy (stylizing on a T4) finds the factors training wrote
    for the float32 weights, instead of a float64 SVD into a second ~4 GB file; a float16
    decomposition itself is never written under the shared key."""
    import svdinst.spectral.svd as svd

    monkeypatch.setattr(svd, "cache_dir", lambda: tmp_path)
    trained = add_spectral_shifts(Plain(), base_model="toy")
    files = sorted((tmp_path / "spectral").iterdir())
    assert len(files) == 1
    monkeypatch.setattr(svd, "decompose_matrices", lambda *a, **k: pytest.fail("decomposed"))
    half = add_spectral_shifts(Plain().half(), base_model="toy")
    for name, layer in half.items():  # float32 factors (the exact path) of the float32 weights
        for ours, theirs in zip((layer.U, layer.S, layer.Vh), (trained[name].U, trained[name].S,
                                                               trained[name].Vh)):  # fmt: skip
            assert torch.equal(ours, theirs), name
    monkeypatch.undo()
    monkeypatch.setattr(svd, "cache_dir", lambda: tmp_path)
    other = Plain().half()
    with torch.no_grad():
        other.c1.weight.mul_(2)  # a float16 model whose float32 weights were never decomposed
    add_spectral_shifts(other, base_model="toy")
    assert sorted((tmp_path / "spectral").iterdir()) == files


def test_removed_shifts_leave_a_plain_model():
    """Issue 13, finding 3: after remove_spectral_shifts(merge=True) nothing of the wrappers is
    left (their factors, the CPU copy of the original, the fast path's buffers, the hook)."""
    from spectral_toys import FAST, plain_input, randomize_shifts

    from svdinst.spectral import merge_spectral_shifts, remove_spectral_shifts

    x = plain_input()
    for config in (EXACT, FAST):
        model, ref = Plain(), Plain()
        wrappers = add_spectral_shifts(model, config=config)
        randomize_shifts(model)
        model(x)  # the fast path builds its buffers in a forward
        merge_spectral_shifts(model)
        expected = model(x)
        remove_spectral_shifts(model, merge=True)
        assert sorted(model.state_dict()) == sorted(ref.state_dict())
        assert sum(t.numel() for t in model.state_dict().values()) == sum(
            t.numel() for t in ref.state_dict().values()
        )
        assert not list(model.buffers()) and not model._forward_pre_hooks
        assert not [k for k in vars(model) if k.startswith("_svdinst")]
        for layer in wrappers.values():  # a wrapper someone still holds keeps no tensors
            assert not layer._buffers and layer.original is None and layer.sv is None
        torch.testing.assert_close(model(x), expected, rtol=0, atol=0)


def test_layer_kinds_and_reconstruction_errors():
    from diffusers import UNet2DConditionModel

    from svdinst.spectral.svd import layer_kind, reconstruction_errors

    with torch.device("meta"):
        unet = UNet2DConditionModel(cross_attention_dim=768)
    kinds = {n: layer_kind(n) for n in spectral_shift_layout(unet)}
    assert "other" not in kinds.values()
    assert kinds["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"] == "cross-attn k/v"
    assert kinds["mid_block.resnets.1.conv2"] == "resnet conv"
    model = Plain()
    add_spectral_shifts(model, config=EXACT)
    errors = reconstruction_errors(model)
    assert set(errors) == {"c1", "c2", "c3", "fc", "out"} and max(errors.values()) < 1e-6
    with torch.no_grad():
        model.c1.base_layer.weight.add_(0.1)  # a factorization of other weights: visible
    assert reconstruction_errors(model)["c1"] > 1e-3
