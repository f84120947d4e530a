"""The fast training step: forward and backward over static input buffers, one CUDA graph.

At batch 1 an SD-1.4 step is launch-bound: ~3,000 kernels, each with Python and driver
overhead, plus the spectral layers' custom autograd functions and their per-step rebuild. The
issue-15 measurements (H200, SD-1.4 shapes): an eager svd-inst step cost 2.08× an inst step
and 4.6× a graph-captured textual-inversion step, while the same spectral step captured in a
graph costs 1.29× (TF32). So :func:`~svdinst.training.loop.train` runs each step as

1. draw the batch on the host exactly as the eager loop does (same generator, same order),
   copy it into *static* device buffers (latents, noise, timesteps, CLIP features);
2. :class:`StaticStep`: the spectral refresh (W or σ' from the current δ, forced), the
   objective (InST module, text encoder, UNet, loss) and the backward, captured once in a CUDA
   graph and replayed every step. Its loss and embedding are static outputs;
3. the optimizer step and the lr schedule, eagerly (a few ``_foreach`` launches), queued behind
   the replay; then the divergence check and the log read loss and token norm in one device
   read (the one host sync a step needs anyway).

Why the optimizer step stays outside the graph: the default precision on CUDA is fp16 frozen
weights, whose ``GradScaler`` checks for inf/NaN gradients on the host before it steps —
PyTorch's CUDA-graph notes prescribe exactly this split for AMP (capture forward, loss and
backward; step outside). It also keeps the optimizer state, the Python-float lr of the
``LambdaLR`` schedule and the checkpoints identical in both modes, so a run moves between
eager and graph steps on ``--resume`` without conversion, and gradient clipping could be added
once for both (the loop does not clip: neither InST nor SVDiff does). Under several processes
the graph runs the unwrapped objective and the gradients (a few MB: δ and the InST module) are
averaged with one ``all_reduce`` after the replay, where DDP would have reduced them in the
backward; the result is the same mean gradient.

Replay-safety of the spectral layers: the refresh sits *inside* the graph and is forced, so it
never depends on δ's version counter (an optimizer step outside the graph bumps it, a replay
does not run Python). After each replay the layers' ``built_key`` is cleared, so eager code
that reads them later (saving the run, a sample) rebuilds first. Gradient checkpointing saves
and restores the CUDA RNG state, which a capture forbids: with it, or with gradient
accumulation (grads must be overwritten, not summed), ``step_mode="auto"`` trains eagerly.
On a CPU (and whenever capture fails) the very same step function runs without a graph, which
is what the tests compare against the eager loop.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import torch
from torch import nn

from svdinst.spectral import refresh_spectral_weights, shift_grads_aside, spectral_layers
from svdinst.training.config import STEP_MODES, TrainConfigError

WARMUP_STEPS = 3  # eager runs on a side stream before capture (cuBLAS/cuDNN workspaces, paths)


def resolve_step_mode(
    requested: str, cuda: bool, grad_accum: int, checkpointing: bool
) -> tuple[str, str]:
    """``("graph" | "eager", why)`` for a run: ``auto`` takes the graph step where it can work.

    Args:
        requested (`str`): ``TrainConfig.step_mode``: ``"auto"``, ``"graph"`` or ``"eager"``.
        cuda (`bool`): the run trains on a CUDA GPU (capture needs one; elsewhere the static
            step runs without a graph, identically).
        grad_accum (`int`): micro-batches per step; the graph overwrites gradients.
        checkpointing (`bool`): gradient checkpointing is on (its RNG handling cannot be captured).
    """
    if requested not in STEP_MODES:
        raise ValueError(f"step_mode must be one of {list(STEP_MODES)}, got {requested!r}")
    if requested == "eager":
        return "eager", "asked for"
    blockers = []
    if grad_accum > 1:
        blockers.append(f"--grad-accum {grad_accum}")
    if checkpointing:
        blockers.append("gradient checkpointing")
    if requested == "graph" and blockers:
        raise TrainConfigError(
            f"--step-mode graph cannot run with {' and '.join(blockers)}; use --step-mode auto "
            "(it trains eagerly then) or drop those options."
        )
    if blockers:
        return "eager", " and ".join(blockers)
    if requested == "auto" and not cuda:
        return "eager", "no CUDA GPU"
    return "graph", "CUDA graph" if cuda else "static step without capture (no CUDA GPU)"


def use_channels_last(requested: bool | None, step_mode: str, cuda: bool) -> bool:
    """``TrainConfig.channels_last`` resolved: ``None`` means on exactly when the step is a CUDA
    graph (the big-card path, measured faster); an explicit value is kept.

    Args:
        requested (`bool`, *optional*): ``TrainConfig.channels_last``.
        step_mode (`str`): the resolved step mode (``"graph"`` or ``"eager"``).
        cuda (`bool`): the run trains on a CUDA GPU.
    """
    if requested is not None:
        return requested
    return cuda and step_mode == "graph"


def _clone(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else x.detach().clone()


class StaticStep:
    """Forward + backward of one step over static buffers; captured in a CUDA graph on CUDA.

    Call it with the step's batch; it copies the batch into its buffers, runs (or replays) the
    step and returns ``(loss, embedding)`` — the static outputs, valid until the next call —
    with every trainable parameter's ``.grad`` holding this step's gradient (averaged over the
    processes). The caller then steps the optimizer and must not set the gradients to ``None``.

    Args:
        model (`nn.Module`): the unwrapped ``DiffusionObjective``;
            ``model(latents, noise, timesteps, input_ids, features) -> (loss, embedding)``.
        backward (`Callable[[torch.Tensor], None]`): ``accelerator.backward`` (loss scaling).
        params (`list[torch.Tensor]`): the trainable parameters (their grads are static).
        input_ids (`torch.Tensor`): the fixed prompt ids on the device.
        shifts (`nn.Module`, *optional*): the module whose spectral shifts are trained (the
            UNet): its W (or σ') is rebuilt from δ first, and its layers' δ gradients are
            computed off the backward's main chain (``shift_grads_aside``).
        capture (`bool`): capture in a CUDA graph (else the same body runs eagerly).
        world (`int`, defaults to 1): processes; > 1 averages gradients after the step.
    """

    def __init__(
        self,
        model: nn.Module,
        backward: Callable[[torch.Tensor], None],
        params: list[torch.Tensor],
        input_ids: torch.Tensor,
        shifts: nn.Module | None,
        capture: bool,
        world: int = 1,
    ) -> None:
        self.model, self.backward, self.params = model, backward, params
        self.input_ids, self.shifts, self.world = input_ids, shifts, world
        self.capture = capture
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: list[torch.Tensor | None] | None = None
        self.loss: torch.Tensor | None = None
        self.embedding: torch.Tensor | None = None
        self.spectral: list = []  # the layers whose cached key a replay makes stale

    def _body(self) -> None:
        aside = contextlib.nullcontext()
        if self.shifts is not None:
            refresh_spectral_weights(self.shifts)
            aside = shift_grads_aside(self.shifts)
        latents, noise, timesteps, features = self.inputs
        with aside:
            loss, embedding = self.model(latents, noise, timesteps, self.input_ids, features)
            self.backward(loss)
        self.loss = loss.detach()
        self.embedding = None if embedding is None else embedding.detach()

    def _load(self, batch: tuple) -> None:
        if self.inputs is None:  # first step: the buffers are copies of its batch
            self.inputs = [_clone(x) for x in batch]
            return
        for buffer, value in zip(self.inputs, batch):
            if buffer is not None:
                buffer.copy_(value, non_blocking=True)

    def __call__(
        self,
        latents: torch.Tensor,
        noise: torch.Tensor,
        timesteps: torch.Tensor,
        features: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One step's forward and backward on this batch (see the class docstring)."""
        self._load((latents, noise, timesteps, features))
        if self.capture and self.graph is None:
            self._capture()
        if self.graph is not None:
            self.graph.replay()
            for layer in self.spectral:  # W now follows δ through the graph, not the key
                layer.built_key = None
        else:
            for p in self.params:  # as zero_grad(set_to_none=True): this step's gradient only
                p.grad = None
            self._body()
        if self.world > 1:
            self._average_gradients()
        return self.loss, self.embedding

    def _capture(self) -> None:
        """Warm up on a side stream, then capture the body; on failure keep stepping eagerly."""
        rng = torch.cuda.get_rng_state()  # warm-up and capture must not shift the dropout RNG
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(WARMUP_STEPS):
                    for p in self.params:
                        p.grad = None
                    self._body()
            torch.cuda.current_stream().wait_stream(side)
            for p in self.params:  # the captured backward allocates static gradients
                p.grad = None
            # The warm-up's activations sit in the allocator's cache; the graph takes its own
            # pool, so without this a large batch would need twice its activation memory.
            torch.cuda.empty_cache()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._body()
            self.graph = graph
            self.spectral = list(spectral_layers(self.model).values())
        except Exception as err:  # an op that cannot be captured: correct, only slower
            warnings.warn(
                f"CUDA graph capture of the training step failed ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:200]}); training eagerly. --step-mode eager "
                "skips the attempt.",
                stacklevel=3,
            )
            self.capture, self.graph = False, None
            torch.cuda.synchronize()
        finally:
            torch.cuda.set_rng_state(rng)

    def _average_gradients(self) -> None:
        """Mean of the gradients over the processes (DDP's reduction, done after the step)."""
        import torch.distributed as dist

        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1).float() for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()
