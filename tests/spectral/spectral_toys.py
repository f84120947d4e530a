"""Toy models and helpers shared by the spectral tests (a helper module, not a test module).

Named ``spectral_toys`` rather than ``toys``: test folders have no ``__init__.py``, so pytest puts
each folder on ``sys.path`` and a plain ``toys`` could shadow another folder's helper.
"""

from __future__ import annotations

import torch
from torch import nn

from svdinst.spectral import SpectralShiftConfig, spectral_layers

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


def plain_input(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A fixed batch of 3 inputs for :class:`Plain`."""
    return torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1), dtype=dtype)


def randomize_shifts(model: nn.Module, std: float = 0.3, seed: int = 2) -> None:
    """Set every δ to seeded noise of ``std`` times the layer's mean σ."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in spectral_layers(model).values():
            layer.delta.copy_(torch.randn(layer.delta.shape, generator=gen) * std * layer.S.mean())
