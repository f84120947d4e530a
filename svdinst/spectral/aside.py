"""∂L/∂δ beside the backward's main chain: the training step's spectral gradients on a side stream.

Nothing later in a backward reads ∂L/∂δ: the chain that carries the gradient down through the
UNet needs only ∂L/∂x. Yet each fast layer computed both in line — a factored layer's GEMM
diagonal Σₙ (g·U)∘h and its gating, a weight-path layer's dW and its projection onto δ — and
autograd then copied the (strided) diagonal into a contiguous gradient: two to four kernels per
layer that the next layer's backward waited for. At batch 1 inside a CUDA graph the step is
bound by its number of kernels, not their arithmetic (``reports/benchmarks.md``, issue 15): each
costs the device microseconds, however small.

Inside :class:`ShiftGradsAside` (the training step's forward and backward) each fast layer's
backward returns only ∂L/∂x to autograd and hands the δ gradient's computation to the
collector. On CUDA it runs on a side stream that first waits for the main stream (the inputs are
ready), so it overlaps the rest of the backward; a CUDA graph captures the two streams as two
branches. Every ``JOIN_EVERY`` layers, and at the end, the main stream waits for the side one;
until then the collector holds the inputs it passed, so the allocator cannot hand their memory to
the main stream while the side stream still reads it. On exit each δ gets its gradient (summed
if a layer ran twice). On a CPU the same calls run in line, in the same order: the results are
the bits of the plain backward (a test checks it), the streams only reorder the launches.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

JOIN_EVERY = 16  # layers between two waits of the main stream: bounds the inputs held alive

_STREAMS: dict[torch.device, torch.cuda.Stream] = {}


def side_stream(device: torch.device) -> torch.cuda.Stream | None:
    """The side stream for ∂L/∂δ on ``device`` (one per device, made once); ``None`` off CUDA."""
    if device.type != "cuda":
        return None
    key = torch.device("cuda", device.index if device.index is not None else 0)
    if key not in _STREAMS:
        _STREAMS[key] = torch.cuda.Stream(key)
    return _STREAMS[key]


class ShiftGradsAside:
    """Context manager for one forward + backward: the listed layers' δ gradients are computed
    aside (see the module docstring) and written to ``delta.grad`` on a clean exit.

    The gradients must be ``None`` on entry, as after ``zero_grad(set_to_none=True)``: the
    collector assigns them, and the graph step's capture then keeps them as static tensors.

    Args:
        layers (`list`): the fast, unmerged spectral layers of the model being stepped.
    """

    def __init__(self, layers: list) -> None:
        self.layers = layers
        self.results: list[tuple[object, torch.Tensor]] = []
        self.held: list[torch.Tensor] = []
        self.stream: torch.cuda.Stream | None = None
        self.waiting = 0

    def __enter__(self) -> ShiftGradsAside:
        held = [lay for lay in self.layers if lay.delta.grad is not None]
        if held:
            raise RuntimeError(
                f"ShiftGradsAside needs δ's gradients cleared (None) on entry; {len(held)} "
                "layer(s) hold one: zero_grad(set_to_none=True) first."
            )
        if self.layers:
            self.stream = side_stream(self.layers[0].delta.device)
        for lay in self.layers:
            lay.aside = self
        return self

    def run(
        self, layer: object, compute: Callable[[], torch.Tensor], *inputs: torch.Tensor
    ) -> None:
        """Queue ``compute()`` (→ the layer's gated ∂L/∂δ), which reads ``inputs``."""
        if self.stream is None:
            self.results.append((layer, compute()))
            return
        main = torch.cuda.current_stream(self.stream.device)
        self.stream.wait_stream(main)  # the inputs were made on the main stream
        with torch.cuda.stream(self.stream):
            self.results.append((layer, compute()))
        self.held.extend(inputs)
        self.waiting += 1
        if self.waiting >= JOIN_EVERY:
            self._join()

    def _join(self) -> None:
        """The main stream waits for the side one; the held inputs may then be freed."""
        if self.stream is not None:
            torch.cuda.current_stream(self.stream.device).wait_stream(self.stream)
        self.held.clear()
        self.waiting = 0

    def __exit__(self, kind, value, traceback) -> None:
        for lay in self.layers:
            lay.aside = None
        self._join()
        results, self.results = self.results, []
        if kind is not None:
            return
        main = None if self.stream is None else torch.cuda.current_stream(self.stream.device)
        for layer, grad in results:
            if main is not None:  # made on the side stream, read and later freed on the main one
                grad.record_stream(main)
            delta = layer.delta
            delta.grad = grad if delta.grad is None else delta.grad + grad


def shift_grad_or_aside(
    layer, compute: Callable[[], torch.Tensor], *inputs: torch.Tensor
) -> torch.Tensor | None:
    """A fast layer's ∂L/∂δ for autograd: ``compute()`` now, or ``None`` while the layer is in a
    :class:`ShiftGradsAside`, which computes it aside from ``inputs`` and assigns it later."""
    if layer.aside is None:
        return compute()
    layer.aside.run(layer, compute, *inputs)
    return None
