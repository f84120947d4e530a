"""One training loop for the three modes: ``inst``, ``svdiff`` and ``svd-inst``.

The objective is latent diffusion's noise-prediction loss (LDM Eq. 2 = DDPM Eq. 14):
``E_{z, ε, t} ‖ε − ε_θ(√ᾱ_t·z + √(1−ᾱ_t)·ε, t, c)‖²`` on crops of the style image(s), where the
condition ``c`` is the CLIP text encoding of the prompt with the placeholder token. The modes only
change which parameters the optimizer gets:

* ``inst`` — InST's image→token module (the placeholder's embedding is computed every step from
  the CLIP features of the training crop, as InST does, or of the whole style image with
  ``token_image="whole"``); the UNet is frozen.
* ``svdiff`` — the UNet's spectral shifts δ (SVDiff, W = U·diag(relu(σ+δ))·Vᵀ); the placeholder
  keeps its initial embedding.
* ``svd-inst`` — both, jointly: what the original student code meant to do but never did (its
  shifts never reached the optimizer).

``accelerate`` handles the device, mixed precision (frozen parts in fp16/bf16, trainable parts in
fp32) and multiple GPUs: every process draws the *same* global batch from the same generator and
trains on its slice, so N GPUs follow the 1-GPU loss curve for the same global batch.

Each step's forward and backward run eagerly or, on CUDA by default, replayed from one CUDA graph
over static input buffers (:mod:`svdinst.training.graphed`, ``TrainConfig.step_mode``); the
batch drawing, the optimizer step, logging and checkpoints are the same code in both.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from svdinst.device import card_memory_gib, default_device, precision_dtype
from svdinst.errors import RunFolderError, SvdinstError
from svdinst.formats.checkpoint import load_latest_checkpoint, save_checkpoint, set_rng_state
from svdinst.formats.run_folder import TOKEN_NORM, LossLog, RunFolder
from svdinst.models.clip_vocab import padded_ids
from svdinst.models.loading import load_components
from svdinst.spectral import (
    SpectralShiftConfig,
    add_spectral_shifts,
    refresh_spectral_weights,
)
from svdinst.training.config import (
    TrainConfig,
    TrainConfigError,
    check_run_start,
    prepare_run_dir,
)
from svdinst.training.graphed import StaticStep, resolve_step_mode, use_channels_last
from svdinst.training.interrupt import StopRequests, TrainingInterrupted
from svdinst.training.inversion import (
    ImageToToken,
    ImageToTokenConfig,
    PlaceholderInjector,
    add_placeholder_token,
    encode_images,
)
from svdinst.training.memory import (
    _release_accelerator_state,
    divergence_advice,
    enable_gradient_checkpointing,
    make_accelerator,
    training_precision,
    use_gradient_checkpointing,
)
from svdinst.training.objective import DiffusionObjective
from svdinst.training.products import write_outputs
from svdinst.training.style_crops import StyleSampler, gather_style_images, vae_scale_factor


class TrainingDivergedError(SvdinstError, RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    """What :func:`train` returns: where the run is and its per-step losses."""

    run_dir: Path
    losses: list[float]
    steps: int
    seconds: float
    step_mode: str = "eager"  # "graph" (captured), "static" (its step without capture), "eager"


def _trainable(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p for n, p in module.named_parameters() if p.requires_grad}


def train(
    config: TrainConfig,
    resume: bool = False,
    overwrite: bool = False,
    callback: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train one run into ``config.out`` (docs/DESIGN.md, "Run folder").

    Args:
        config (`TrainConfig`): every setting (see its field comments).
        resume (`bool`, defaults to `False`): continue from the newest checkpoint of
            ``config.out``; the result equals an uninterrupted run (same seed, same device).
        overwrite (`bool`, defaults to `False`): replace an existing run in ``config.out``.
        callback (`Callable[[int, float], None]`, *optional*): called after every optimizer step
            with (step, loss) on every process, e.g. to plot live or to measure memory.

    Returns:
        `TrainResult`: the run folder and the losses of the steps run in this call.
    """
    # One writer per run folder; under `accelerate launch` process 0 holds the lock for all.
    locked = os.environ.get("RANK", "0") == "0"
    with RunFolder(config.out).lock() if locked else contextlib.nullcontext():
        return _train(config, resume, overwrite, callback)


def _train(config: TrainConfig, resume: bool, overwrite: bool, callback: Callable | None):
    """:func:`train` while holding the run folder's lock."""
    styles = gather_style_images(config.style)  # bad input fails before any model is loaded
    names = [path.name for path, _ in styles]
    if config.saved_token not in ("mean", *names):
        raise TrainConfigError(
            f"--saved-token {config.saved_token!r} is neither 'mean' nor a style image of "
            f"--style ({', '.join(names)})."
        )
    device = default_device()
    cuda = device == "cuda"
    precision = training_precision(config.mixed_precision, device)  # "auto": fp16 on CUDA
    _release_accelerator_state(precision)
    accelerator = make_accelerator(cuda, precision)
    main = accelerator.is_main_process
    world, rank = accelerator.num_processes, accelerator.process_index
    if config.batch_size % world:
        raise TrainConfigError(
            f"--batch-size {config.batch_size} is the global batch: it must be divisible by the "
            f"{world} processes."
        )
    local = config.batch_size // world
    frozen_dtype = precision_dtype(accelerator.mixed_precision)
    if main:  # a run in the way or nothing to resume: refused before any model loads
        check_run_start(config, resume, overwrite)
    run = Path(config.out)

    vision = None
    if config.trains_token:  # first, so a model folder without a vision tower fails fast
        vision = load_components(config.model, ["image_encoder", "feature_extractor"],
                                 device=accelerator.device, image_encoder=config.image_encoder)  # fmt: skip
    parts = ["unet", "vae", "text_encoder", "tokenizer", "scheduler"]
    comps = load_components(config.model, parts, device=accelerator.device)
    if config.resolution is None:  # the model's native size (saved as such in the settings)
        config.resolution = int(comps.unet.config.sample_size) * vae_scale_factor(comps.vae)
    torch.manual_seed(config.seed)
    token_id = add_placeholder_token(
        comps.tokenizer, comps.text_encoder, config.placeholder_token, config.initializer_token
    )
    injector = PlaceholderInjector(comps.text_encoder, token_id)
    image_to_token, features, encode = None, None, None
    if config.trains_token:
        encode = functools.partial(encode_images, vision.image_encoder, vision.feature_extractor,
                                   image_tokens=config.image_tokens)  # fmt: skip
        features = encode([im for _, im in styles])  # the whole images: the saved token's input
        cfg = ImageToTokenConfig.for_models(
            vision.image_encoder, comps.text_encoder, image_tokens=config.image_tokens
        )
        image_to_token = ImageToToken(cfg).to(accelerator.device).train()
    if config.trains_shifts:
        fast = cuda if config.fast_shifts is None else config.fast_shifts
        low = frozen_dtype if frozen_dtype != torch.float32 else None
        # rebuild="step": W is rebuilt once per optimizer step (refresh below), not in every
        # forward — which matters under gradient accumulation and gradient checkpointing.
        shift_cfg = SpectralShiftConfig(
            fast=fast, compute_dtype=low if fast else None, rebuild="step"
        )
        add_spectral_shifts(comps.unet, config.shift_include, config.shift_exclude,
                            config=shift_cfg, base_model=config.model)  # fmt: skip
    for module in (comps.unet, comps.vae, comps.text_encoder):  # frozen parts in low precision
        for p in module.parameters():
            if not p.requires_grad:
                p.data = p.data.to(frozen_dtype)
    checkpointing = use_gradient_checkpointing(
        config.gradient_checkpointing, device, card_memory_gib(accelerator.device)
    )
    step_mode, why = resolve_step_mode(config.step_mode, cuda, config.grad_accum, checkpointing)
    nhwc = use_channels_last(config.channels_last, step_mode, cuda)
    if nhwc:  # 4-D weights → NHWC, and the latents below: every conv runs NHWC (spectral: fast.py)
        comps.unet.to(memory_format=torch.channels_last)
    if checkpointing:
        # The text tower only carries gradients when the token is trained.
        towers = [comps.unet, comps.text_encoder] if config.trains_token else [comps.unet]
        enable_gradient_checkpointing(*towers)
    per_crop = config.token_image == "crop" and config.trains_token  # InST: CLIP sees the sample
    sampler = StyleSampler([im for _, im in styles], comps.vae, config.resolution,
                           config.augment, config.min_crop, config.crop_pool, config.seed,
                           encode=encode if per_crop else None)  # fmt: skip
    if sampler.cached or not per_crop:  # every input is encoded: the vision tower is done
        sampler.encode, encode, vision = None, None, None
    if main:  # model and images loaded: only now may --overwrite delete the old run
        prepare_run_dir(config, resume, overwrite)
    accelerator.wait_for_everyone()
    objective = DiffusionObjective(
        comps.unet, comps.text_encoder, comps.scheduler, injector, image_to_token, features
    )
    groups = []
    if image_to_token is not None:
        groups.append({"params": list(image_to_token.parameters()), "lr": config.token_lr})
    if config.trains_shifts:
        groups.append({"params": list(_trainable(comps.unet).values()), "lr": config.shifts_lr})
    # fused on CUDA: one kernel for all ~300 tensors, and with fp16's GradScaler no host sync
    # (the scaler hands it found_inf on the device) — the part of a step the graph leaves eager.
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay, fused=cuda)
    warm = config.warmup_steps
    lr_sched = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0
    )
    objective, optimizer = accelerator.prepare(objective, optimizer)
    plain = accelerator.unwrap_model(objective)
    trainable = _trainable(plain)

    gen = torch.Generator().manual_seed(config.seed)
    start, elapsed = 0, 0.0
    if resume:
        state = load_latest_checkpoint(run)
        with torch.no_grad():
            for name, value in state["params"].items():
                trainable[name].copy_(value)
        optimizer.load_state_dict(state["optimizer"])
        lr_sched.load_state_dict(state["lr_scheduler"])
        gen.set_state(state["generator"])
        sampler.rng.bit_generator.state = state["crop_rng"]
        set_rng_state(state["rng"])
        start, elapsed = state["step"], state["seconds"]
        if config.trains_shifts:
            refresh_spectral_weights(comps.unet)
    if start >= config.steps:
        raise RunFolderError(
            f"--resume: '{run}' is already at step {start}; pass --steps > {start}."
        )
    if main:
        config.save(run)
    prompt = config.prompt_template.format(config.placeholder_token)
    input_ids = padded_ids(comps.tokenizer, prompt).to(accelerator.device).expand(local, -1)
    num_t = comps.scheduler.config.num_train_timesteps

    def checkpoint(step: int) -> None:
        if not main:
            return
        state = {
            "params": {n: p.detach().cpu() for n, p in trainable.items()},
            "optimizer": optimizer.state_dict(),
            "lr_scheduler": lr_sched.state_dict(),
            "generator": gen.get_state(),
            "crop_rng": sampler.rng.bit_generator.state,
            "seconds": elapsed,
            "mode": config.mode,
        }
        save_checkpoint(run, step, state, keep=config.keep_checkpoints)

    folder = RunFolder(run)
    log = LossLog(folder.log_path, start, extra=(TOKEN_NORM,)) if main else None
    fixed_norm = float(injector.embedding.weight[token_id].float().norm())  # svdiff: never moves
    losses: list[float] = []
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps,
               disable=not (main and config.progress), desc=f"train {config.mode} ({step_mode}: {why})")  # fmt: skip
    t0 = time.perf_counter()
    every = config.checkpoint_interval

    def draw() -> tuple:
        """This process's slice of the step's global batch, on the device."""
        picks, owners, eps = sampler.draw(config.batch_size, gen)
        noise = torch.randn((config.batch_size, *eps.shape[1:]), generator=gen)
        t = torch.randint(0, num_t, (config.batch_size,), generator=gen)
        sl = slice(rank * local, (rank + 1) * local)
        latents = sampler.latents(picks[sl], eps[sl], accelerator.device)
        feats = None
        if config.trains_token:
            feats = sampler.features(picks[sl]) if per_crop else features[owners[sl].to(features.device)]  # fmt: skip
        noise_local = noise[sl].to(accelerator.device)
        if nhwc:  # conv_in then runs NHWC, and so does every conv after it
            latents, noise_local = (x.contiguous(memory_format=torch.channels_last)
                                    for x in (latents, noise_local))  # fmt: skip
        return latents, noise_local, t[sl].to(accelerator.device), feats

    static = None
    if step_mode == "graph":  # same body as below, over static buffers; a CUDA graph on CUDA
        shifts = comps.unet if config.trains_shifts else None
        static = StaticStep(plain, accelerator.backward, list(trainable.values()), input_ids,
                            shifts, capture=cuda, world=world)  # fmt: skip
    with StopRequests() as stop:
        for step in bar:
            if static is not None:  # graph/static step: one batch (it needs grad_accum 1)
                total, embedding = static(*draw())
            else:  # eager: grad_accum micro-batches, gradients synced on the last one only
                total = torch.zeros((), device=accelerator.device)
                for micro in range(config.grad_accum):
                    latents, noise, t, feats = draw()
                    sync = micro == config.grad_accum - 1
                    with contextlib.nullcontext() if sync else accelerator.no_sync(objective):
                        loss, embedding = objective(latents, noise, t, input_ids, feats)
                        accelerator.backward(loss / config.grad_accum)
                    total += loss.detach() / config.grad_accum
            lr_used = optimizer.param_groups[0]["lr"]  # log the lr of this step, not the next one
            # The update is queued before the loss is read, so its host-side work (AdamW and the
            # GradScaler over ~300 tensors) overlaps the step still running on the GPU, and the
            # device is read once per step (loss and token norm together). A non-finite loss
            # still stops the run before anything is saved: the checkpoint on disk is the last
            # good one (under fp16 the GradScaler has skipped that update on the device anyway).
            optimizer.step()
            if config.trains_shifts and static is None:
                refresh_spectral_weights(comps.unet)  # fast path: rebuild W from the new δ
            lr_sched.step()
            if static is None:  # the static step's gradients live in its buffers (graph)
                optimizer.zero_grad(set_to_none=True)
            reduced = accelerator.reduce(total, "mean").float()
            if embedding is not None:
                injector.write_row(embedding.detach().mean(0))
                norm = embedding.detach().float().norm(dim=-1).mean()
                mean_loss, token_norm = torch.stack([reduced, norm]).tolist()
            else:
                mean_loss, token_norm = float(reduced), fixed_norm
            if not math.isfinite(mean_loss):
                if log is not None:
                    log.close()
                lrs = (config.token_lr if config.trains_token else None,
                       config.shifts_lr if config.trains_shifts else None)  # fmt: skip
                raise TrainingDivergedError(
                    f"Loss became {mean_loss} at step {step + 1}; the last good checkpoint in "
                    f"'{folder.checkpoints}' is kept. To continue: "
                    f"{divergence_advice(*lrs, device)}."
                )
            elapsed += time.perf_counter() - t0
            t0 = time.perf_counter()
            losses.append(mean_loss)
            if log is not None:
                log.write(step + 1, mean_loss, lr_used, elapsed, **{TOKEN_NORM: token_norm})
            bar.set_postfix(loss=f"{mean_loss:.4f}")
            if callback is not None:
                callback(step + 1, mean_loss)
            stopping = stop.signum is not None  # Ctrl-C or kill: save this step, then stop
            if world > 1:  # all processes stop at the same step, or the rest hang in a collective
                asked = torch.tensor(float(stopping), device=accelerator.device)
                stopping = float(accelerator.reduce(asked, "sum")) > 0
            if stopping or (every and (step + 1) % every == 0):
                checkpoint(step + 1)
            if stopping and step + 1 < config.steps:
                if log is not None:
                    log.close()
                signum = stop.signum or signal.SIGINT  # another process was signalled
                raise TrainingInterrupted(signum, run, step + 1, config.steps)
    if log is not None:
        log.close()
    if not (every and config.steps % every == 0):  # the final state, so a run can be extended
        checkpoint(config.steps)
    if main:
        write_outputs(config, folder, comps, plain, names)
    accelerator.wait_for_everyone()
    injector.remove()
    ran = "eager" if static is None else ("graph" if static.graph is not None else "static")
    return TrainResult(run, losses, config.steps, elapsed, ran)
