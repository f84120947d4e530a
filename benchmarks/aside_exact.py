"""Are the δ gradients computed aside (a side stream, CUDA graph) the plain backward's? (issue 15)

``svdinst.spectral.aside`` moves every fast layer's ∂L/∂δ off the backward's main chain: on CUDA
onto a side stream, which a CUDA graph captures as a second branch. Reordering launches must not
change a bit, and a missing wait between the streams would show as a race. This script builds
the SD-1.4 UNet (random weights, float16 as the kit trains it, channels-last, spectral shifts on
the fast path with ``factored="auto"``), sets random shifts, and compares the δ gradients of one
backward three ways with the plain backward's (no collector, autograd returns every gradient):

* ``aside, eager`` — the collector with its side stream, no graph;
* ``aside, graph`` — the same captured in a CUDA graph, replayed three times on the same inputs;
* ``plain, again`` — the plain backward a second time (what run-to-run noise looks like here).

    python benchmarks/aside_exact.py            # CUDA, SD-1.4 shapes (~1 min on an H100/H200)
    python benchmarks/aside_exact.py --small    # anywhere: toy shapes, in line (no streams)
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import torch
import torch.nn.functional as F
from spectral_step import batch, build

from svdinst.spectral import (
    SpectralShiftConfig,
    add_spectral_shifts,
    refresh_spectral_weights,
    shift_grads_aside,
    spectral_layers,
)


def backward_grads(unet, layers, inputs, cond, aside: bool) -> None:
    """One forward + backward; δ gradients left in ``layer.delta.grad``."""
    for lay in layers:
        lay.delta.grad = None
    latents, t, _, noise = inputs
    refresh_spectral_weights(unet)
    with shift_grads_aside(unet) if aside else contextlib.nullcontext():
        pred = unet(latents, t, cond).sample
        F.mse_loss(pred.float(), noise.float()).backward()


def flat(layers) -> torch.Tensor:
    return torch.cat([lay.delta.grad.flatten().double() for lay in layers])


def compare(name: str, got: torch.Tensor, ref: torch.Tensor) -> str:
    diff = (got - ref).abs().max().item()
    rel = diff / ref.abs().max().item()
    same = torch.equal(got, ref)
    return f"| {name} | {'yes' if same else 'no'} | {diff:.3g} | {rel:.3g} |"


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="toy shapes (CPU: no side stream)")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.small
    device = "cuda" if cuda else "cpu"
    dtype = torch.float16 if cuda else torch.float32
    unet, encoder = build(args.small, device)
    unet.to(dtype=dtype, memory_format=torch.channels_last)
    cfg = SpectralShiftConfig(fast=True, factored="auto", cache=False)
    add_spectral_shifts(unet, config=cfg, base_model="aside-check")
    layers = list(spectral_layers(unet).values())
    gen = torch.Generator(device).manual_seed(1)
    with torch.no_grad():
        for lay in layers:  # shifts of the size of σ, so some σ + δ < 0 and the gate matters
            lay.delta.copy_(torch.randn(lay.delta.shape, generator=gen, device=device) * lay.S)
    latent = 8 if args.small else 64
    inputs = batch(1, latent, encoder.config.vocab_size, device)
    inputs = tuple(x.to(dtype) if x.is_floating_point() else x for x in inputs)
    inputs = (inputs[0].contiguous(memory_format=torch.channels_last), *inputs[1:])
    with torch.no_grad():
        cond = encoder(inputs[2])[0].to(dtype)

    rows = []
    backward_grads(unet, layers, inputs, cond, aside=False)
    ref = flat(layers)
    backward_grads(unet, layers, inputs, cond, aside=False)
    rows.append(compare("plain, again", flat(layers), ref))
    backward_grads(unet, layers, inputs, cond, aside=True)
    rows.append(
        compare("aside, eager" + ("" if cuda else " (in line: no CUDA)"), flat(layers), ref)
    )
    if cuda:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the capture stream, as the kit's StaticStep
            for _ in range(2):
                backward_grads(unet, layers, inputs, cond, aside=True)
        torch.cuda.current_stream().wait_stream(side)
        for lay in layers:
            lay.delta.grad = None
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            backward_grads(unet, layers, inputs, cond, aside=True)
        for k in range(3):
            graph.replay()
            torch.cuda.synchronize()
            rows.append(compare(f"aside, graph replay {k + 1}", flat(layers), ref))
    card = torch.cuda.get_device_name() if cuda else "CPU"
    head = (f"δ gradients of one backward against the plain backward's ({card}, "
            f"{len(layers)} spectral layers, {sum(lay.factored for lay in layers)} factored, "
            f"{dtype}, torch {torch.__version__}):")  # fmt: skip
    text = "\n".join([head, "", "| run | bit-identical | max abs diff | ÷ max abs |",
                      "|---|---|---|---|", *rows])  # fmt: skip
    print(text)
    return text


if __name__ == "__main__":
    sys.exit(main() and None)
