"""Training-step cost of spectral shifts against textual inversion, on SD-1.4-shaped models.

Builds the SD-1.4 UNet (859.5 M parameters, random weights: shapes set the cost) and a CLIP-L
text encoder, then times side by side in one process, at batch 1 and 4 on 64×64 latents:

* ``ti``     — textual inversion: frozen UNet, gradients to the text condition (token embeddings);
* ``naive``  — SVDiff as ported: W = U·diag(relu(σ+δ))·Vᵀ rebuilt inside autograd every forward;
* ``ours-*`` — :mod:`svdinst.spectral.fast`: rebuild outside autograd, custom backward projecting
  dW onto δ (``fp32`` factors, or ``bf16`` factors/W with fp32 accumulation);
* ``ours-fact`` — the same with ``factored="auto"``: layers with few tokens run
  y = ((x·V)·diag(σ'))·Uᵀ without W (:mod:`svdinst.spectral.factored`), bf16 factors;
* ``full``   — full fine-tuning of the UNet (AdamW);

under TF32 (``tf32``) and under bf16 autocast (``bf16-amp``, the TI baseline then runs in bf16
too), with the peak memory of each, the δ-gradient agreement with the naive path, the SVD time
(batched Gram/eigh, serial and with CPU lanes, vs ``torch.linalg.svd`` layer by layer), the cached reload, and a merged vs
vanilla inference step. ``--small`` uses toy shapes so the script runs on a CPU in seconds.

    python benchmarks/spectral_step.py            # on a GPU; updates reports/benchmarks.md
    python benchmarks/spectral_step.py --small    # anywhere; prints the table only
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from report_md import write_block

from svdinst.spectral import (
    SpectralShiftConfig,
    add_spectral_shifts,
    merge_spectral_shifts,
    set_fast_path,
    shift_grads_aside,
    spectral_layers,
)
from svdinst.spectral.svd import (
    cache_path,
    decompose_matrices,
    save_factors,
    weights_fingerprint,
)

HEADING = "Spectral shifts: training step (benchmarks/spectral_step.py)"


def build(small: bool, device: str):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    with torch.device(device):
        if small:
            unet = UNet2DConditionModel(
                block_out_channels=(32, 64),
                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                layers_per_block=1,
                cross_attention_dim=32,
                norm_num_groups=16,
                sample_size=8,
            )
            text = CLIPTextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1)
            text.num_attention_heads = 4
        else:  # SD-1.4's UNet config (diffusers' defaults with CLIP-L's 768-wide context)
            unet = UNet2DConditionModel(cross_attention_dim=768)
            text = CLIPTextConfig(
                hidden_size=768, intermediate_size=3072, num_hidden_layers=12
            )  # CLIP-L text tower
            text.num_attention_heads = 12
        text.max_position_embeddings = 77
        encoder = CLIPTextModel(text)
    unet.requires_grad_(False).train()
    encoder.requires_grad_(False).train()
    return unet, encoder


def batch(bs: int, latent: int, vocab: int, device: str, seed: int = 0):
    gen = torch.Generator(device).manual_seed(seed)
    return (
        torch.randn(bs, 4, latent, latent, device=device, generator=gen),
        torch.randint(0, 1000, (bs,), device=device, generator=gen),
        torch.randint(0, vocab, (bs, 77), device=device, generator=gen),
        torch.randn(bs, 4, latent, latent, device=device, generator=gen),
    )


def timed(fn, steps: int, warmup: int, device: str) -> tuple[float, float]:
    """(median ms per call, peak GiB during the timed calls incl. resident tensors)."""
    for _ in range(warmup):
        fn()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(1e3 * (time.perf_counter() - t0))
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return statistics.median(times), peak


def make_step(unet, encoder, params, inputs, amp: bool, device: str, graph: bool = False):
    """One optimizer step: text → UNet noise prediction → MSE → backward → AdamW.

    With ``graph`` the whole step (forward, backward, optimizer) is captured once in a CUDA
    graph and replayed, which removes the Python and launch overhead of ~3,000 kernels. When
    the text encoder is frozen (no parameter of it in ``params``) it runs eagerly outside the
    graph and its output is copied into the graph's static input.
    """
    opt = torch.optim.AdamW(params, lr=1e-5, capturable=graph)
    latents, t, ids, noise = inputs
    # bf16 mixed precision, as accelerate's --mixed_precision bf16 (no cast cache under graphs)
    ctx = (
        torch.autocast(device, dtype=torch.bfloat16, cache_enabled=not graph)
        if amp
        else contextlib.nullcontext()
    )
    text_trains = any(p is encoder.get_input_embeddings().weight for p in params)
    static_cond = None
    if graph and not text_trains:
        with torch.no_grad(), ctx:
            static_cond = encoder(ids)[0].clone()

    shifted = bool(spectral_layers(unet))  # ours: δ gradients off the main chain, as the kit's step

    def body():
        # Fresh gradients each step (shift_grads_aside needs them; the graph's backward then
        # allocates its static ones during capture).
        opt.zero_grad(set_to_none=True)
        with shift_grads_aside(unet) if shifted else contextlib.nullcontext():
            with ctx:
                cond = encoder(ids)[0] if static_cond is None else static_cond
                pred = unet(latents, t, cond).sample
            F.mse_loss(pred.float(), noise).backward()
        opt.step()

    if not graph:
        return body, opt
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            body()
    torch.cuda.current_stream().wait_stream(side)
    cuda_graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(cuda_graph):
        body()

    def replay():
        if static_cond is not None:
            with torch.no_grad(), ctx:
                static_cond.copy_(encoder(ids)[0])
        cuda_graph.replay()

    return replay, opt


def svd_options(mats: dict, device: str) -> dict[str, float]:
    """Diagnostics: seconds to decompose 8 of the largest 1280-row weights by several routes."""
    if device != "cuda":
        return {}
    shapes = [tuple(m.shape) for m in mats.values()]
    shape = max(set(shapes), key=lambda sh: (shapes.count(sh) >= 8, sh[0] * sh[1]))
    group = [m for m in mats.values() if tuple(m.shape) == shape][:8]
    a = torch.stack([m.double() for m in group])
    gram = a @ a.mT
    out = {}

    def clock(name, fn):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        try:
            fn()
            torch.cuda.synchronize()
            out[name] = time.perf_counter() - t0
        except Exception as err:  # a route missing on this build is reported, not fatal
            print(f"{name} failed: {err}")

    clock("eigh-fp64-cusolver", lambda: torch.linalg.eigh(gram))
    clock("eigh-fp32-cusolver", lambda: torch.linalg.eigh(gram.float()))
    torch.backends.cuda.preferred_linalg_library("magma")
    clock("eigh-fp64-magma", lambda: torch.linalg.eigh(gram))
    torch.backends.cuda.preferred_linalg_library("default")
    cpu = gram.cpu()
    clock("eigh-fp64-cpu", lambda: torch.linalg.eigh(cpu))
    clock("svd-fp32-gpu", lambda: torch.linalg.svd(a.float(), full_matrices=False))
    print(f"SVD routes for {len(group)} weights {tuple(group[0].shape)}: {out}")
    return out


def delta_grads(unet, encoder, inputs, amp: bool, device: str) -> torch.Tensor:
    layers = spectral_layers(unet)
    for layer in layers.values():
        layer.delta.grad = None
    latents, t, ids, noise = inputs
    ctx = torch.autocast(device, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    with ctx:
        pred = unet(latents, t, encoder(ids)[0]).sample
    F.mse_loss(pred.float(), noise).backward()
    return torch.cat([layer.delta.grad.flatten().float() for layer in layers.values()])


def run(args) -> list[dict]:
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    latent = 8 if args.small else 64
    unet, encoder = build(args.small, device)
    vocab = encoder.config.vocab_size
    rows: list[dict] = []
    n_params = sum(p.numel() for p in unet.parameters())
    print(
        f"UNet {n_params / 1e6:.1f} M params on {device}; text encoder {encoder.config.hidden_size}"
    )
    inputs = {bs: batch(bs, latent, vocab, device) for bs in args.batch_sizes}
    precisions = ["tf32", "bf16-amp"] if device == "cuda" else ["tf32"]

    def record(name, bs, prec, fn):
        ms, gib = timed(fn, args.steps, args.warmup, device)
        rows.append({"variant": name, "bs": bs, "precision": prec, "ms": ms, "gib": gib})
        print(f"{name:<12} bs {bs} {prec:<8} {ms:8.1f} ms  {gib:6.2f} GiB", flush=True)

    # Inference: vanilla UNet forward (later compared with the merged one).
    lat, t, ids, _ = inputs[1]
    with torch.no_grad():
        cond = encoder(ids)[0]
    with torch.no_grad():
        record("infer-vanilla", 1, "tf32", lambda: unet(lat, t, cond))

    def graphed(name, bs, prec, params):
        try:
            step, _ = make_step(unet, encoder, params, inputs[bs], prec != "tf32", device, True)
            record(name, bs, prec, step)
        except Exception as err:  # report the failure, keep the other numbers
            print(f"{name} bs {bs} {prec}: capture failed: {type(err).__name__}: {err}")
        torch.cuda.empty_cache()

    emb = encoder.get_input_embeddings().weight
    for prec in precisions:
        for bs in args.batch_sizes:  # textual inversion: only the token embeddings train
            emb.requires_grad_(True)
            step, opt = make_step(unet, encoder, [emb], inputs[bs], prec != "tf32", device)
            record("ti", bs, prec, step)
            del opt
            emb.requires_grad_(False)
            emb.grad = None
    if device == "cuda":  # TI with its whole step captured in a CUDA graph
        emb.requires_grad_(True)
        for prec in precisions:
            for bs in args.batch_sizes:
                graphed("ti+graph", bs, prec, [emb])
        emb.requires_grad_(False)
        emb.grad = None
    if not args.skip_full:
        for bs in args.batch_sizes:
            unet.requires_grad_(True)
            step, opt = make_step(unet, encoder, list(unet.parameters()), inputs[bs], False, device)
            record("full", bs, "tf32", step)
            opt.state.clear()
            del opt, step
            unet.requires_grad_(False)
            for p in unet.parameters():
                p.grad = None
    if device == "cuda":
        torch.cuda.empty_cache()

    # SVD of every wrapped weight: batched float64 Gram + eigh, and the layer-by-layer SVD.
    modules = dict(unet.named_modules())
    mats = {
        n: m.weight.detach().reshape(m.weight.shape[0], -1)
        for n, m in modules.items()
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))
    }
    timings, serial = {}, None
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    lanes = [(0, 1), (2, 1), (0, 2), (0, 4), (2, 2), (2, 4), (4, 4)]
    for workers, gpu_lanes in lanes if device == "cuda" else [(0, 1)]:
        t0 = time.perf_counter()
        factors = decompose_matrices(
            mats, method="gram", progress=False, cpu_workers=workers, gpu_lanes=gpu_lanes
        )
        sync()
        timings[f"svd-gram cpu={workers} gpu={gpu_lanes}"] = time.perf_counter() - t0
        serial = serial if workers or gpu_lanes > 1 else factors
    t0 = time.perf_counter()
    factors = decompose_matrices(mats, method="gram", progress=False)  # the default
    sync()
    timings["svd-gram (default)"] = time.perf_counter() - t0
    same = max(float((f[1] - serial[n][1]).abs().max() / f[1][0]) for n, f in factors.items())
    print(f"σ of the default (lanes) vs the serial path: max |Δσ|/σ₁ = {same:.1e}")
    timings["σ vs serial"] = same
    del serial
    if args.svd_baseline:
        t0 = time.perf_counter()
        for m in mats.values():
            torch.linalg.svd(m.float(), full_matrices=False)
        sync()
        timings["svd-per-layer"] = time.perf_counter() - t0
    err = max(  # in float64: a TF32 product would measure TF32, not the factors
        float(((f[0].double() * f[1].double()) @ f[2].double() - mats[n].double()).norm())
        / float(mats[n].double().norm())
        for n, f in factors.items()
    )
    try:
        timings.update({f"route {k}": v for k, v in svd_options(mats, device).items()})
    except Exception as err:  # diagnostics only
        print(f"SVD route diagnostics failed: {err}")
    print(f"SVD: {timings}; max relative reconstruction error {err:.2e}")
    # The cache as add_spectral_shifts uses it: factors saved under the base model's key, then
    # wrapping reloads them (fingerprint + read + wrap is what a second run pays).
    previous, scratch = os.environ.get("SVDINST_CACHE"), tempfile.mkdtemp(prefix="svdinst-bench-")
    os.environ["SVDINST_CACHE"] = scratch
    try:
        save_factors(cache_path("benchmark", weights_fingerprint(mats)), factors, "benchmark")
        del factors, mats  # the views would keep the original float32 weights alive on the GPU
        if device == "cuda":
            torch.cuda.empty_cache()
        sync()
        t0 = time.perf_counter()
        add_spectral_shifts(unet, config=SpectralShiftConfig(), base_model="benchmark")
        sync()
    finally:  # leave the caller's cache setting as it was, and no 4 GB of factors behind
        shutil.rmtree(scratch, ignore_errors=True)
        if previous is None:
            os.environ.pop("SVDINST_CACHE", None)
        else:
            os.environ["SVDINST_CACHE"] = previous
    timings["cached-reload+wrap"] = time.perf_counter() - t0
    print(f"cached reload + wrap: {timings['cached-reload+wrap']:.2f} s")
    deltas = [layer.delta for layer in spectral_layers(unet).values()]
    factored: dict[int, str] = {}
    grads = {"naive": delta_grads(unet, encoder, inputs[1], False, device)}
    if device == "cuda":  # the precision floor: the naive path itself under bf16 autocast
        grads["naive/bf16-amp"] = delta_grads(unet, encoder, inputs[1], True, device)
    for bs in args.batch_sizes:
        record("naive", bs, "tf32", make_step(unet, encoder, deltas, inputs[bs], False, device)[0])
    with torch.no_grad():
        for d in deltas:
            d.zero_()
    paths = {"ours-fp32": "never", "ours-bf16": "never", "ours-fact": "auto"}
    for name, dtype in (("ours-fp32", torch.float32), ("ours-bf16", torch.bfloat16),
                        ("ours-fact", torch.bfloat16)):  # fmt: skip
        set_fast_path(unet, True, dtype, factored=paths[name])
        if device == "cuda":
            torch.cuda.empty_cache()
        for prec in precisions if dtype == torch.bfloat16 else ["tf32"]:
            grads[f"{name}/{prec}"] = delta_grads(unet, encoder, inputs[1], prec != "tf32", device)
            for bs in args.batch_sizes:
                set_fast_path(unet, True, factored=paths[name])  # path chosen at this bs
                step, _ = make_step(unet, encoder, deltas, inputs[bs], prec != "tf32", device)
                record(name, bs, prec, step)
                if name == "ours-fact":
                    factored[bs] = factored_share(unet)
            with torch.no_grad():
                for d in deltas:
                    d.zero_()
    if device == "cuda":  # the same steps captured in a CUDA graph, ours and TI alike
        for name in ("ours-bf16", "ours-fact"):
            for prec in precisions:
                for bs in args.batch_sizes:
                    set_fast_path(unet, True, factored=paths[name])
                    graphed(f"{name}+graph", bs, prec, deltas)
                    with torch.no_grad():
                        for d in deltas:
                            d.zero_()
    ref = grads["naive"]
    agree = {k: float((g - ref).norm() / ref.norm()) for k, g in grads.items() if k != "naive"}
    print("δ-gradient relative difference to naive:", {k: f"{v:.1e}" for k, v in agree.items()})

    merge_spectral_shifts(unet)
    with torch.no_grad():
        record("infer-merged", 1, "tf32", lambda: unet(lat, t, cond))
    card = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    timings["factored"] = factored
    return rows, timings, agree, card, err


def factored_share(unet) -> str:
    """'a of b layers, p% of the rebuild FLOPs' that ``factored="auto"`` ran without W."""
    layers = spectral_layers(unet).values()
    flops = {lay: lay.U.shape[0] * lay.S.numel() * lay.Vh.shape[1] for lay in layers}
    chosen = [lay for lay in layers if lay.factored]
    share = sum(flops[lay] for lay in chosen) / sum(flops.values())
    return f"{len(chosen)} of {len(flops)} layers ({100 * share:.0f}% of the rebuild FLOPs)"


def table(rows, timings, agree, card, err, small: bool) -> str:
    def key(r):
        return (r["bs"], r["precision"], r["variant"].endswith("+graph"))

    base = {key(r): r for r in rows if r["variant"] in ("ti", "ti+graph")}
    lines = [
        f"Card: **{card}**, torch {torch.__version__}; SD-1.4-shaped UNet"
        + (" (--small: toy shapes)" if small else "")
        + ", 64×64 latents, 77 tokens; median step time, peak allocated memory. Ratios are to "
        "the TI step of the same batch size, precision and mode (eager, or CUDA graph for "
        "`+graph` rows); the last column is to the eager TI step.",
        "",
        "| variant | bs | precision | ms/step | × TI step | peak GiB | × TI peak | × eager TI step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        train = not r["variant"].startswith("infer")
        ti = base.get(key(r))
        eager = base.get((r["bs"], r["precision"], False))
        rt = f"{r['ms'] / ti['ms']:.2f}" if ti and train else "–"
        rm = f"{r['gib'] / ti['gib']:.2f}" if ti and train and ti["gib"] == ti["gib"] else "–"
        re_ = f"{r['ms'] / eager['ms']:.2f}" if eager and train else "–"
        lines.append(
            f"| {r['variant']} | {r['bs']} | {r['precision']} | {r['ms']:.1f} | {rt} | "
            f"{r['gib']:.2f} | {rm} | {re_} |"
        )
    factored = timings.pop("factored", {})
    lines += [
        "",
        "`ours-fact` ran without W (factored) in "
        + "; ".join(f"bs {bs}: {text}" for bs, text in factored.items())
        + ".",
        "SVD of all wrapped weights: "
        + ", ".join(
            f"{k} {v:.1e} (max |Δσ|/σ₁)" if k == "σ vs serial" else f"{k} {v:.2f} s"
            for k, v in timings.items()
        )
        + f"; max relative reconstruction error {err:.1e}.",
        "δ-gradient vs the naive path (‖g − g_naive‖/‖g_naive‖, bs 1): "
        + ", ".join(f"{k} {v:.1e}" for k, v in agree.items())
        + ".",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--small", action="store_true", help="toy shapes (CPU, tests)")
    p.add_argument("--cpu", action="store_true", help="run on the CPU even if CUDA is present")
    p.add_argument("--steps", type=int, default=10, help="timed steps per variant (median)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    p.add_argument("--skip-full", action="store_true", help="skip full fine-tuning")
    p.add_argument("--svd-baseline", action="store_true", help="also time per-layer linalg.svd")
    p.add_argument("--report", type=Path, default=None, help="markdown file to update")
    args = p.parse_args(argv)
    rows, timings, agree, card, err = run(args)
    text = table(rows, timings, agree, card, err, args.small)
    print(text)
    if args.report is not None:
        write_block(args.report, "spectral_step", HEADING, text)
        print(f"Updated {args.report}")


if __name__ == "__main__":
    main()
