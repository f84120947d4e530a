"""Side by side in one process: spectral_step.py's graphed bf16-autocast spectral step with σ'
folded into the factors (svdinst.spectral.prescale) and without, beside the TI step (CUDA)."""

import gc

import torch
from spectral_step import batch, build, make_step, timed

from svdinst.spectral import SpectralShiftConfig, add_spectral_shifts, prescale, spectral_layers

torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
print(torch.cuda.get_device_name(), torch.__version__, flush=True)
unet, encoder = build(False, "cuda")
inputs = batch(1, 64, encoder.config.vocab_size, "cuda")
emb = encoder.get_input_embeddings().weight
emb.requires_grad_(True)
step, _ = make_step(unet, encoder, [emb], inputs, True, "cuda", graph=True)
print(f"ti-graph-bf16-amp: {timed(step, 25, 3, 'cuda')[0]:.1f} ms", flush=True)
del step
emb.requires_grad_(False)
emb.grad = None
add_spectral_shifts(unet, config=SpectralShiftConfig(fast=True, compute_dtype=torch.bfloat16))
deltas = [lay.delta for lay in spectral_layers(unet).values()]
real = prescale.wanted
for flag in (False, True, False, True):
    prescale.wanted = real if flag else (lambda layer: False)
    gc.collect()
    torch.cuda.empty_cache()
    step, _ = make_step(unet, encoder, deltas, inputs, True, "cuda", graph=True)
    ms, peak = timed(step, 25, 3, "cuda")
    used = sum(lay.us is not None for lay in spectral_layers(unet).values())
    print(
        f"spectral-graph-bf16-amp prescaled={flag}: {ms:.1f} ms, peak {peak:.2f} GiB, "
        f"{used} layers with U·diag(σ')",
        flush=True,
    )
    del step
