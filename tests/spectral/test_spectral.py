"""Spectral shifts (SVDiff Eq. 1): exactness, merge/unmerge, save/load, gradients, layout."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from svdinst.errors import ShiftFileError
from svdinst.spectral import (
    SpectralShiftConfig,
    add_spectral_shifts,
    load_spectral_shifts,
    merge_spectral_shifts,
    refresh_spectral_weights,
    remove_spectral_shifts,
    save_spectral_shifts,
    set_shift_scale,
    spectral_layers,
    spectral_shift_layout,
    spectral_shifts_state_dict,
    unmerge_spectral_shifts,
)
from svdinst.spectral.svd import decompose_matrices

EXACT = SpectralShiftConfig(cache=False)
FAST = SpectralShiftConfig(fast=True, cache=False)


class Plain(nn.Module):
    """Linear and Conv2d layers covering stride, padding, groups, dilation and missing bias."""

    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(4, 6, 3, stride=2, padding=1, dtype=dtype)
        self.c2 = nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=3, dtype=dtype)
        self.c3 = nn.Conv2d(6, 8, (1, 3), padding=(0, 1), bias=False, dtype=dtype)
        self.fc = nn.Linear(8 * 4 * 4, 5, dtype=dtype)
        self.out = nn.Linear(5, 12, dtype=dtype)  # wide: more outputs than singular values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.c3(torch.tanh(self.c2(torch.tanh(self.c1(x))))))
        return self.out(torch.tanh(self.fc(h.flatten(1))))


def _x(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1), dtype=dtype)


def _randomize(model: nn.Module, std: float = 0.3, seed: int = 2) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in spectral_layers(model).values():
            layer.delta.copy_(torch.randn(layer.delta.shape, generator=gen) * std * layer.S.mean())


@pytest.fixture(scope="module")
def tiny_unet(tiny_model_dir):
    from svdinst.models.loading import load_components

    return load_components("tiny", parts=["unet"]).unet


def _unet_inputs(unet):
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 8, 8, generator=gen)
    text = torch.randn(1, 5, unet.config.cross_attention_dim, generator=gen)
    return sample, torch.tensor([500]), text


@pytest.mark.parametrize("config", [EXACT, FAST], ids=["exact", "fast"])
def test_zero_shift_reproduces_plain_layers(config):
    model, x = Plain(), _x()
    ref = model(x)
    layers = add_spectral_shifts(model, config=config)
    assert set(layers) == {"c1", "c2", "c3", "fc", "out"}
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        f"{n}.delta" for n in layers
    ]
    torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-5)


def test_zero_shift_reproduces_tiny_unet(tiny_unet):
    unet = copy.deepcopy(tiny_unet)
    args = _unet_inputs(unet)
    ref = unet(*args).sample
    layers = add_spectral_shifts(unet, base_model="tiny")  # the session's SVD cache
    assert len(layers) == len(spectral_shift_layout(tiny_unet))
    out = unet(*args).sample
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    _randomize(unet, std=0.5)
    assert (unet(*args).sample - ref).abs().max() > 1e-2  # the shifts do reach the output


def test_merge_equals_unmerged_and_unmerge_restores_bitwise():
    model, x = Plain(), _x()
    originals = {n: m.weight.detach().clone() for n, m in model.named_children()}
    add_spectral_shifts(model, config=EXACT)
    _randomize(model)
    unmerged = model(x)
    merge_spectral_shifts(model)
    assert all(layer.merged for layer in spectral_layers(model).values())
    torch.testing.assert_close(model(x), unmerged, rtol=1e-6, atol=1e-6)
    unmerge_spectral_shifts(model)
    for name, layer in spectral_layers(model).items():
        assert torch.equal(layer.base_layer.weight, originals[name])
    torch.testing.assert_close(model(x), unmerged, rtol=1e-6, atol=1e-6)


def test_shift_scale_zero_is_base_and_remerges():
    model, x = Plain(), _x()
    ref = model(x)
    add_spectral_shifts(model, config=EXACT)
    _randomize(model)
    full = model(x)
    merge_spectral_shifts(model)
    set_shift_scale(model, 0.0)
    torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-5)
    set_shift_scale(model, 1.0)
    torch.testing.assert_close(model(x), full, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="finite"):
        set_shift_scale(model, float("nan"))


def test_remove_keeps_merged_weights():
    model, x = Plain(), _x()
    add_spectral_shifts(model, config=EXACT)
    _randomize(model)
    shifted = model(x)
    remove_spectral_shifts(model)
    assert not spectral_layers(model) and isinstance(model.c1, nn.Conv2d)
    torch.testing.assert_close(model(x), shifted, rtol=1e-6, atol=1e-6)


def test_delta_gradient_matches_finite_differences():
    """Exact path in float64: autograd's ∂L/∂δ against central differences (gradcheck)."""
    model, x = Plain(torch.float64), _x(torch.float64)
    layers = add_spectral_shifts(model, config=EXACT)
    _randomize(model, std=1.0)  # some σ + δ < 0: the ReLU's kink is in play
    set_shift_scale(model, 0.7)
    assert any((lay.S + 0.7 * lay.delta < 0).any() for lay in layers.values())
    names = [f"{n}.delta" for n in layers]

    def f(*ds):
        return torch.func.functional_call(model, dict(zip(names, ds)), (x,))

    inputs = tuple(lay.delta.detach().clone().requires_grad_(True) for lay in layers.values())
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("rebuild", ["forward", "step"])
def test_fast_gradient_equals_exact_gradient(rebuild):
    grads = {}
    for name, cfg in (("exact", EXACT), ("fast", SpectralShiftConfig(fast=True, cache=False))):
        cfg.rebuild = rebuild
        model, x = Plain(), _x()
        add_spectral_shifts(model, config=cfg)
        _randomize(model, std=1.0)
        set_shift_scale(model, 0.7)
        loss = (model(x) ** 2).sum() + model(x * 0.5).sum()  # two forwards, one backward
        loss.backward()
        grads[name] = {n: lay.delta.grad for n, lay in spectral_layers(model).items()}
    for n, g in grads["exact"].items():
        assert g.abs().max() > 0
        torch.testing.assert_close(grads["fast"][n], g, rtol=1e-4, atol=1e-6)


def test_fast_step_rebuilds_after_optimizer_step():
    model, x = Plain(), _x()
    cfg = SpectralShiftConfig(fast=True, rebuild="step", factored="never", cache=False)
    add_spectral_shifts(model, config=cfg)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1, fused=True)
    model(x).sum().backward()
    before = model.c1.base_layer.weight.detach().clone()
    opt.step()  # fused AdamW does not bump δ's version: refresh explicitly
    refresh_spectral_weights(model)
    after = model.c1.base_layer.weight.detach().clone()
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, model.c1.rebuild_weight().detach(), rtol=1e-6, atol=1e-6)


def test_save_load_roundtrip_is_bit_exact(tmp_path):
    model = Plain()
    add_spectral_shifts(model, config=EXACT, base_model="plain-test")
    _randomize(model)
    path = save_spectral_shifts(model, tmp_path / "shifts.safetensors")
    other = Plain()
    add_spectral_shifts(other, config=EXACT, base_model="plain-test")
    meta = load_spectral_shifts(other, path)
    assert meta["base_model"] == "plain-test" and meta["layers"]["c2"] == (6, 2, 3, 3)
    saved, loaded = spectral_shifts_state_dict(model), spectral_shifts_state_dict(other)
    assert all(torch.equal(saved[n], loaded[n]) for n in saved)
    torch.testing.assert_close(other(_x()), model(_x()), rtol=0, atol=0)


def test_wrong_model_load_fails_clearly(tmp_path):
    model = Plain()
    add_spectral_shifts(model, config=EXACT)
    path = save_spectral_shifts(model, tmp_path / "shifts.safetensors")
    fewer = Plain()
    add_spectral_shifts(fewer, exclude=["^out$"], config=EXACT)
    with pytest.raises(ShiftFileError, match=r"shifts\.safetensors.*does not fit.*\['out'\]"):
        load_spectral_shifts(fewer, path)
    wider = Plain()
    wider.fc = nn.Linear(8 * 4 * 4, 7)
    wider.out = nn.Linear(7, 12)
    add_spectral_shifts(wider, config=EXACT)
    with pytest.raises(ShiftFileError, match=r"layer 'fc' has weight shape \(5, 128\)"):
        load_spectral_shifts(wider, path)
    with pytest.raises(ShiftFileError, match="does not exist"):
        load_spectral_shifts(model, tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ShiftFileError, match=r"junk\.safetensors"):
        load_spectral_shifts(model, tmp_path / "junk.safetensors")
    with pytest.raises(ShiftFileError, match="no spectral shifts"):
        load_spectral_shifts(Plain(), path)


def test_sd14_layout_has_282_layers_and_222696_shifts(tmp_path):
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    with torch.device("meta"):  # SD-1.4's UNet config; shapes only, no memory
        unet = UNet2DConditionModel(cross_attention_dim=768)
    layout = spectral_shift_layout(unet)
    assert len(layout) == 282
    assert sum(k for _, k in layout.values()) == 222_696
    # A shift file of this layout (same writer as save_spectral_shifts) stays under 1 MB.
    meta = {"layers": json.dumps({n: list(s) for n, (s, _) in layout.items()}), "format": "x"}
    save_file({n: torch.zeros(k) for n, (_, k) in layout.items()}, tmp_path / "f.st", meta)
    assert (tmp_path / "f.st").stat().st_size < 1_000_000


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


def test_svd_cache_is_reused(monkeypatch):
    import svdinst.spectral.svd as svd

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


def test_bad_arguments():
    with pytest.raises(ValueError, match="svd_method"):
        SpectralShiftConfig(svd_method="qr")
    model = Plain()
    with pytest.raises(ValueError, match=r"No nn\.Linear"):
        add_spectral_shifts(model, include=["nothing-matches"])
    add_spectral_shifts(model, config=EXACT)
    with pytest.raises(ValueError, match="already has spectral shifts"):
        add_spectral_shifts(model)
    with pytest.raises(ValueError, match="add_spectral_shifts"):
        merge_spectral_shifts(Plain())


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


def test_benchmark_script_small(tmp_path):
    """benchmarks/spectral_step.py --small runs every CPU variant and writes its report section."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "benchmarks" / "spectral_step.py"
    spec = importlib.util.spec_from_file_location("spectral_step", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = tmp_path / "benchmarks.md"
    report.write_text("# Benchmarks\n\n## Someone else's section\n")
    argv = ["--small", "--cpu", "--steps", "1", "--warmup", "0", "--batch-sizes", "1"]
    bench.main([*argv, "--skip-full", "--report", str(report)])
    bench.main([*argv, "--skip-full", "--report", str(report)])  # replaces its own section
    text = report.read_text()
    assert text.count("<!-- spectral_step:begin -->") == 1 and "Someone else's section" in text
    variants = ("| ti |", "| naive |", "| ours-fp32 |", "| ours-bf16 |", "| ours-fact |")
    for variant in (*variants, "| infer-merged |"):
        assert variant in text
    assert "ours-fp32/tf32" in text


@pytest.mark.parametrize("config", [EXACT, FAST], ids=["exact", "fast"])
def test_low_precision_base_weights(config):
    """A bf16 model: factors stay float32 (exact path), zero δ still gives the base output."""
    model, x = Plain(torch.bfloat16), _x(torch.bfloat16)
    ref = model(x)
    add_spectral_shifts(model, config=config)
    assert model.c1.S.dtype == torch.float32 and model.c1.delta.dtype == torch.float32
    torch.testing.assert_close(model(x), ref, rtol=2e-2, atol=2e-2)
    _randomize(model)
    model(x).float().square().sum().backward()
    assert all(lay.delta.grad.abs().sum() > 0 for lay in spectral_layers(model).values())
    state = model.state_dict()
    assert "c1.delta" in state and "c1.U" not in state  # factors are not checkpointed


def test_state_dict_holds_base_weights_and_shifts_only():
    model = Plain()
    add_spectral_shifts(model, config=EXACT)
    keys = set(model.state_dict())
    assert keys == {
        f"{n}.base_layer.{p}" for n in ("c1", "c2", "fc", "out") for p in ("weight", "bias")
    } | {"c3.base_layer.weight"} | {f"{n}.delta" for n in ("c1", "c2", "c3", "fc", "out")}


def test_fast_forward_mode_sees_fused_optimizer_updates():
    """rebuild="forward": even a fused optimizer (no version bump) is seen by the next forward."""
    model, x = Plain(), _x()
    add_spectral_shifts(model, config=FAST)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1, fused=True)
    model(x).sum().backward()
    opt.step()
    with torch.no_grad():
        fast = model(x)
        for layer in spectral_layers(model).values():
            layer.fast = False
        exact = model(x)
    assert (exact - Plain()(x)).abs().max() > 1e-3  # δ did move
    torch.testing.assert_close(fast, exact, rtol=1e-5, atol=1e-5)


class Tokens(nn.Module):
    """Convs (stride, padding, dilation, no bias, asymmetric kernel, groups) then Linear layers
    over a (batch, tokens, channels) input — the factored path's cases and one fallback."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.c1 = nn.Conv2d(4, 6, 3, stride=2, padding=1, dtype=torch.float64)
        self.c2 = nn.Conv2d(6, 6, 3, padding=2, dilation=2, bias=False, dtype=torch.float64)
        self.grouped = nn.Conv2d(6, 6, 3, padding=1, groups=3, dtype=torch.float64)
        self.c3 = nn.Conv2d(6, 8, (1, 3), stride=(1, 2), padding=(0, 1), dtype=torch.float64)
        self.fc = nn.Linear(8, 12, dtype=torch.float64)
        self.out = nn.Linear(12, 5, bias=False, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.grouped(torch.tanh(self.c2(torch.tanh(self.c1(x))))))
        h = self.c3(h).flatten(2).transpose(1, 2)  # (B, tokens, 8)
        return self.out(torch.tanh(self.fc(h)))


def test_factored_path_equals_naive_formula():
    """y = ((x·V)·diag(σ'))·Uᵀ: output, ∂L/∂δ and ∂L/∂x equal the exact path (float64)."""
    x = _x(torch.float64)
    results = {}
    for name, cfg in (
        ("exact", EXACT),
        ("factored", SpectralShiftConfig(fast=True, factored="always", cache=False)),
    ):
        model, xi = Tokens(), x.clone().requires_grad_(True)
        add_spectral_shifts(model, config=cfg)
        _randomize(model, std=1.0)  # some σ + s·δ < 0: the gate matters
        set_shift_scale(model, 0.7)
        y = model(xi)
        (y.square().sum() + y.sum()).backward()
        layers = spectral_layers(model)
        grads = {n: lay.delta.grad for n, lay in layers.items()}
        results[name] = (y.detach(), grads, xi.grad, {n: lay.factored for n, lay in layers.items()})
    y, grads, dx, _ = results["exact"]
    fy, fgrads, fdx, chosen = results["factored"]
    assert chosen == {n: n != "grouped" for n in chosen}  # grouped conv: the weight path
    torch.testing.assert_close(fy, y, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fdx, dx, rtol=1e-10, atol=1e-12)
    assert any((g == 0).any() for g in grads.values())  # the ReLU gate zeroes some shifts
    for n, g in grads.items():
        assert g.abs().max() > 0
        torch.testing.assert_close(fgrads[n], g, rtol=1e-10, atol=1e-12)


def test_factored_choice_follows_flop_model():
    """auto: few tokens → factored, many tokens → the weight path; decided once per layer."""
    from svdinst.spectral.factored import flop_costs

    assert flop_costs(8, 8, 8, 4) == (6 * 4 * 64 + 4 * 512, 4 * 4 * 8 * 16)
    conv = flop_costs(1280, 1280 * 9, 1280, 64)  # SD-1.4's 8×8 blocks, 3×3 conv, bs 1
    assert conv[1] * 15 < conv[0]
    for tokens, factored in ((4, True), (64, False)):
        model = nn.Sequential(nn.Linear(8, 8))
        original = model[0].weight.detach().clone()
        (layer,) = add_spectral_shifts(model, config=FAST).values()
        x = torch.randn(tokens, 8)
        ref = model(x)
        assert layer.factored is factored
        model(torch.randn(4 if tokens == 64 else 64, 8))  # another N: the choice stays
        assert layer.factored is factored
        with torch.no_grad():
            layer.delta.add_(0.1)
            out = model(x)
        torch.testing.assert_close(out, F.linear(x, layer.rebuild_weight(), layer.bias))
        assert not torch.equal(out, ref)
        if factored:  # an unbatched input (one token): same output and ∂L/∂δ as the formula
            x1 = torch.randn(8)
            layer.delta.grad = None
            model(x1).square().sum().backward()
            w = layer.rebuild_weight()
            (ref_grad,) = torch.autograd.grad(
                F.linear(x1, w, layer.bias).square().sum(), layer.delta
            )
            torch.testing.assert_close(layer.delta.grad, ref_grad)
        # a factored layer holds no weight on the device, and unmerge brings the original back
        assert (layer.weight.stride() == (0, 0)) is factored
        unmerge_spectral_shifts(model)
        assert torch.equal(layer.weight, original)
