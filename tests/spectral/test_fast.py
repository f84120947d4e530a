"""The fast path (rebuild once per step, custom backward) and the factored path (no W)."""

from __future__ import annotations

import itertools
from contextlib import nullcontext

import pytest
import torch
import torch.nn.functional as F
from spectral_toys import EXACT, FAST, Plain, plain_input, randomize_shifts
from torch import nn

from svdinst.spectral import (
    SpectralShiftConfig,
    add_spectral_shifts,
    refresh_spectral_weights,
    set_shift_scale,
    spectral_layers,
    unmerge_spectral_shifts,
)


@pytest.mark.parametrize("rebuild", ["forward", "step"])
def test_fast_gradient_equals_exact_gradient(rebuild):
    grads = {}
    for name, cfg in (("exact", EXACT), ("fast", SpectralShiftConfig(fast=True, cache=False))):
        cfg.rebuild = rebuild
        model, x = Plain(), plain_input()
        add_spectral_shifts(model, config=cfg)
        randomize_shifts(model, std=1.0)
        set_shift_scale(model, 0.7)
        loss = (model(x) ** 2).sum() + model(x * 0.5).sum()  # two forwards, one backward
        loss.backward()
        grads[name] = {n: lay.delta.grad for n, lay in spectral_layers(model).items()}
    for n, g in grads["exact"].items():
        assert g.abs().max() > 0
        torch.testing.assert_close(grads["fast"][n], g, rtol=1e-4, atol=1e-6)


def test_fast_step_rebuilds_after_optimizer_step():
    model, x = Plain(), plain_input()
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


def test_fast_forward_mode_sees_fused_optimizer_updates():
    """rebuild="forward": even a fused optimizer (no version bump) is seen by the next forward."""
    model, x = Plain(), plain_input()
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
    x = plain_input(torch.float64)
    results = {}
    for name, cfg in (
        ("exact", EXACT),
        ("factored", SpectralShiftConfig(fast=True, factored="always", cache=False)),
    ):
        model, xi = Tokens(), x.clone().requires_grad_(True)
        add_spectral_shifts(model, config=cfg)
        randomize_shifts(model, std=1.0)  # some σ + s·δ < 0: the gate matters
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


@pytest.mark.parametrize("factored", ["always", "never"])
def test_shift_grads_aside_give_the_same_gradient(factored):
    """The training step computes δ gradients off the backward's main chain (a side stream on
    CUDA; in line on a CPU, in the same order): bit for bit the plain backward's gradients, gate
    zeros included, and a layer run twice gets the sum of its two gradients."""
    from svdinst.spectral import shift_grads_aside

    grads = {}
    for aside, twice in itertools.product((False, True), (False, True)):
        model, x = Tokens(), plain_input(torch.float64)
        add_spectral_shifts(model, config=SpectralShiftConfig(fast=True, factored=factored))
        randomize_shifts(model, std=1.0)  # some σ + s·δ < 0: the gate matters
        set_shift_scale(model, 0.7)
        refresh_spectral_weights(model)
        with shift_grads_aside(model) if aside else nullcontext():
            y = model(x)
            if twice:  # the same layers again: their gradients must add up
                y = y + model(x.flip(0))
            y.square().sum().backward()
        layers = spectral_layers(model)
        assert not any(lay.aside for lay in layers.values())
        grads[aside, twice] = {n: lay.delta.grad for n, lay in layers.items()}
    assert any((g == 0).any() for g in grads[False, False].values())
    for twice in (False, True):
        for n, g in grads[False, twice].items():
            got = grads[True, twice][n]
            assert g.abs().max() > 0, n
            if twice:  # autograd sums the two in its own order: equal to rounding
                torch.testing.assert_close(got, g, rtol=1e-12, atol=1e-14)
            else:
                assert torch.equal(got, g), n
    with pytest.raises(RuntimeError, match="cleared"), shift_grads_aside(model):
        pass  # the gradients of the last backward are still there


def test_column_dots_is_the_row_sum_of_the_product():
    """∂L/∂δ's Σₙ (g·U)∘(x·V): CUDA's GEMM diagonal equals the product's row sum on every layout
    the factored path hands it (Linear rows, NHWC and NCHW maps of batch 1 and 2), and a CPU keeps
    the product and sum, accumulating float16 into float32."""
    from svdinst.spectral.factored import column_dots, gemm_diagonal, rows

    gen = torch.Generator().manual_seed(0)
    for shape, nhwc in (((2, 3, 7), False), ((1, 5, 4, 3), True), ((1, 5, 4, 3), False),
                        ((2, 5, 4, 3), False), ((2, 5, 4, 3), True)):  # fmt: skip
        a, b = (torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(2))
        if nhwc:
            a, b = (t.to(memory_format=torch.channels_last) for t in (a, b))
        conv = len(shape) == 4
        expected = (a * b).sum(dim=(0, 2, 3) if conv else (0, 1))
        for fn in (gemm_diagonal, column_dots):
            got = fn(rows(a, conv), rows(b, conv), torch.float64)
            torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
        if conv and (nhwc or shape[0] == 1):  # no copy of the activations
            assert rows(a, conv).data_ptr() == a.data_ptr()
    half = column_dots(rows(a, True).half(), rows(b, True).half(), torch.float32)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, expected.float(), rtol=2e-2, atol=2e-2)


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
