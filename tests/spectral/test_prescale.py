"""σ' folded into the factors (CUDA's way, forced here on the CPU): the same outputs and gradients."""

from __future__ import annotations

import pytest
import torch
from spectral_toys import EXACT, randomize_shifts
from torch import nn

from svdinst.spectral import (
    SpectralShiftConfig,
    add_spectral_shifts,
    refresh_spectral_weights,
    set_shift_scale,
    spectral_layers,
)
from svdinst.spectral import prescale as prescale_module


class Twins(nn.Module):
    """Layers of repeated shapes (stacked: one product per shape) beside unique ones, convs with
    and without bias, over (batch, tokens, channels) for the Linear layers."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        f64 = torch.float64
        self.c1 = nn.Conv2d(4, 6, 3, padding=1, dtype=f64)
        self.c2 = nn.Conv2d(6, 6, 3, padding=1, dtype=f64)
        self.c3 = nn.Conv2d(6, 6, 3, padding=1, bias=False, dtype=f64)
        self.fc = nn.ModuleList(nn.Linear(6, 6, dtype=f64) for _ in range(3))
        self.out = nn.Linear(6, 3, bias=False, dtype=f64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.c3(torch.tanh(self.c2(torch.tanh(self.c1(x))))))
        h = h.flatten(2).transpose(1, 2)
        for fc in self.fc:
            h = torch.tanh(fc(h))
        return self.out(h)


def _train(factored: str | None, prescaled: bool, monkeypatch) -> list:
    """Three AdamW steps (outputs, x gradient, δ gradients of each); ``None``: the exact path."""
    monkeypatch.setattr(prescale_module, "wanted", lambda layer: prescaled)
    cfg = (
        EXACT
        if factored is None
        else SpectralShiftConfig(fast=True, factored=factored, cache=False)
    )
    model = Twins()
    add_spectral_shifts(model, config=cfg)
    randomize_shifts(model, std=1.0)  # some σ + s·δ < 0: the gate matters
    set_shift_scale(model, 0.7)
    shifts = [lay.delta for lay in spectral_layers(model).values()]
    opt = torch.optim.AdamW(shifts, lr=0.05)
    x = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    steps = []
    for _ in range(3):
        xi = x.clone().requires_grad_(True)
        y = model(xi)
        (y.square().sum() + y.sum()).backward()
        steps.append((y.detach(), xi.grad, [d.grad.clone() for d in shifts]))
        opt.step()
        opt.zero_grad(set_to_none=True)
    with torch.no_grad():
        model(x)  # refreshes from the last step's δ
    return steps, model


@pytest.mark.parametrize("factored", ["always", "never"])
def test_prescaled_factors_give_the_exact_outputs_and_gradients(factored, monkeypatch):
    """U·diag(σ') and diag(σ')·Vᵀ refreshed each step (δ moves): outputs, ∂L/∂x and ∂L/∂δ equal
    the exact path's, and equal the unscaled fast path's; equal shapes share one stacked tensor."""
    exact, _ = _train(None, False, monkeypatch)
    plain, _ = _train(factored, False, monkeypatch)
    folded, model = _train(factored, True, monkeypatch)
    for (y, dx, dd), (py, pdx, pdd), (fy, fdx, fdd) in zip(exact, plain, folded):
        for want, got in ((y, fy), (dx, fdx), (y, py), (dx, pdx), *zip(dd, fdd), *zip(dd, pdd)):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert any((g == 0).any() for g in exact[0][2])  # the ReLU gate zeroed some shifts
    layers = spectral_layers(model)
    for name, lay in layers.items():
        sv = torch.add(lay.S, lay.delta.detach(), alpha=lay.scale).clamp_min(0)  # refresh's σ'
        torch.testing.assert_close(lay.us, lay.U * sv, rtol=0, atol=0)
        if factored == "always" and isinstance(lay.base_layer, nn.Linear):
            torch.testing.assert_close(lay.vs, sv[:, None] * lay.Vh, rtol=0, atol=0)
        else:
            assert lay.vs is None, name
    # U is 6×6 in c1, c2, c3 and the three fc (one stack), 3×3 in out; Vᵀ 6×6 in the fc only.
    stacks = {"U": ["c1", "c2", "c3", "fc.0", "fc.1", "fc.2"], "us": None}
    if factored == "always":
        stacks.update(Vh=["fc.0", "fc.1", "fc.2"], vs=None)
    for attr, names in stacks.items():
        names = names or stacks["U" if attr == "us" else "Vh"]
        base = getattr(layers[names[0]], attr)._base
        assert base is not None and base.shape[0] == len(names), attr
        assert all(getattr(layers[n], attr)._base is base for n in names), attr
        assert getattr(layers["out"], attr)._base is None, attr  # a shape of its own


def test_one_stale_layer_refreshes_its_own_row(monkeypatch):
    """rebuild="step": a layer whose δ alone changed is refreshed in place in its stack's row,
    and the forward equals the exact path's."""
    monkeypatch.setattr(prescale_module, "wanted", lambda layer: True)
    step = SpectralShiftConfig(fast=True, rebuild="step", factored="always", cache=False)
    x = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    outputs = {}
    for name, cfg in (("exact", EXACT), ("fast", step)):
        model = Twins()
        add_spectral_shifts(model, config=cfg)
        randomize_shifts(model, std=0.5)
        layer = spectral_layers(model)["fc.1"]
        with torch.no_grad():
            model(x)  # decides the paths
            if name == "fast":
                refresh_spectral_weights(model)  # every layer at once: builds the stacks
                stack = layer.us._base
                assert stack is not None
            layer.delta.add_(0.3)  # bumps δ's version: this layer alone is stale
            outputs[name] = model(x)
    assert layer.us._base is stack
    sv = torch.add(layer.S, layer.delta, alpha=layer.scale).clamp_min(0)
    torch.testing.assert_close(layer.us, layer.U * sv, rtol=0, atol=0)
    torch.testing.assert_close(outputs["fast"], outputs["exact"], rtol=1e-10, atol=1e-12)


def test_nothing_is_prescaled_on_a_cpu():
    """The CPU keeps the unscaled factored path (its bits: the pocket experiment's numbers)."""
    model = Twins()
    add_spectral_shifts(
        model, config=SpectralShiftConfig(fast=True, factored="always", cache=False)
    )
    model(torch.zeros(1, 4, 5, 5, dtype=torch.float64))
    model(torch.zeros(1, 4, 5, 5, dtype=torch.float64))
    assert all(lay.us is None and lay.vs is None for lay in spectral_layers(model).values())
