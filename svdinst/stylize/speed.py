"""Optional speed levers of the :class:`~svdinst.stylize.stylizer.Stylizer` (issue 15).

The defaults already give stock-diffusers speed: the merged UNet is a plain diffusers UNet in
fp16 with PyTorch's SDPA attention (diffusers' ``AttnProcessor2_0``), and the batch is sized
from free memory. These levers go beyond stock and are off by default (each changes results
by float round-off only, so they are recorded in the outputs' settings):

* ``channels_last`` — NHWC convolutions in the UNet and VAE (tensor-core friendly);
* ``fuse_qkv`` — diffusers' ``fuse_qkv_projections()``: one GEMM for q, k, v (self-attention)
  and k, v (cross-attention) instead of three or two;
* ``compile`` — ``torch.compile`` of the UNet and of the VAE's encoder and decoder. Compiling
  SD-1.4's UNet takes a minute or more per batch shape (the last, partial batch of a run is a
  second shape), so it pays only on long runs; ``benchmarks/stylize_speed.py`` measures the
  compile time beside the gain. The VAE is compiled too because its decoder, eager, took 16.5 of
  a stylized image's 197 ms, and 6.7 ms compiled (H100, batch 32, ``benchmarks/stylize_split.py``).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SpeedOptions:
    """Speed levers beyond stock diffusers (``svdinst stylize`` flags of the same names)."""

    channels_last: bool = False  # NHWC UNet/VAE convolutions; off: stock's memory format
    fuse_qkv: bool = False  # fused attention projections (diffusers' fuse_qkv_projections)
    compile: bool = False  # torch.compile UNet + VAE: ~1 min per batch shape, pays on long runs
    compile_mode: str = "default"  # no CUDA graphs (batch shapes vary), no long autotuning


def apply_speed_options(pipe: torch.nn.Module, options: SpeedOptions) -> None:
    """Apply ``options`` to a loaded ``StableDiffusionImg2ImgPipeline`` (in place).

    Args:
        pipe (`StableDiffusionImg2ImgPipeline`): the pipeline; its UNet must be plain (merged).
        options (`SpeedOptions`): which levers to pull.
    """
    if options.fuse_qkv:
        pipe.unet.fuse_qkv_projections()
        pipe.vae.fuse_qkv_projections()
    if options.channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if options.compile:
        compile_pipeline(pipe, options.compile_mode)


def compile_pipeline(pipe: torch.nn.Module, mode: str = "default") -> None:
    """``torch.compile`` the pipeline's UNet and its VAE's encoder and decoder, in place
    (``nn.Module.compile``: the pipeline keeps its module objects, configs and all). Compiling
    happens at each module's first call with a new input shape.

    Args:
        pipe (`StableDiffusionImg2ImgPipeline`): the pipeline, levers already applied.
        mode (`str`): ``torch.compile``'s mode (the kit's: ``"default"``).
    """
    for module in (pipe.unet, pipe.vae.encoder, pipe.vae.decoder):
        module.compile(mode=mode)


def free_gpu_memory(device: str | torch.device) -> int:
    """Bytes this process can still allocate on ``device``: the card's free memory, or less
    under a ``set_per_process_memory_fraction`` cap (the T4 rehearsal caps an H200 at 14 GiB;
    ``mem_get_info`` alone would report the whole card free).

    Args:
        device (`str` or `torch.device`): a CUDA device.
    """
    device = torch.device(device)
    if device.index is None:  # "cuda" means the current card; some torch calls need its index
        device = torch.device("cuda", torch.cuda.current_device())
    free, total = torch.cuda.mem_get_info(device)
    get_fraction = getattr(torch.cuda, "get_per_process_memory_fraction", None)
    fraction = get_fraction(device) if get_fraction is not None else 1.0
    if fraction < 1.0:  # the allocator refuses beyond fraction × total of its own reservations
        free = min(free, int(fraction * total) - torch.cuda.memory_reserved(device))
    return max(free, 0)


def compact_on_device(module: torch.nn.Module, device: str | torch.device) -> None:
    """Move ``module`` to the host and back, so its tensors sit in fresh, densely filled
    segments of CUDA's caching allocator (a no-op off CUDA).

    A UNet merged in float32 on the card and then cast to float16 leaves its float16 weights
    scattered over segments that the float32 weights and the merge's temporaries had reserved;
    those segments stay reserved while any weight lives in them, and sampling's activations
    then reserve segments of their own beside them. Issue 15 measured the kit's Stylizer at
    1.108× stock diffusers' peak *reserved* memory at batch 4 with equal allocated memory.
    Stock loads its weights host → card once, in order; this gives the merged UNet the same
    layout. The tensors' values are unchanged (a copy, bit for bit).

    Args:
        module (`torch.nn.Module`): on ``device``.
        device (`str` or `torch.device`): where it lives (and returns to).
    """
    if torch.device(device).type != "cuda":
        return
    module.to("cpu")
    release_cached_memory()
    module.to(device)


def release_cached_memory() -> None:
    """Collect garbage and hand CUDA's cached, unused blocks back, so the next allocations (and
    the free-memory reading of ``batch_size="auto"``) see the memory really in use."""
    gc.collect()  # the pipeline's modules hold reference cycles
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
