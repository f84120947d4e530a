"""Pretrain the *pocket* base model: a small SD-layout latent diffusion model on offline photos.

Two stages, as in latent diffusion (Rombach et al., 2022, §3): first the autoencoder (the VAE,
f = 4) learns to reconstruct photo crops (L1 + an L1 on image gradients + a small KL term, no
downloaded perceptual network); then, on the frozen VAE's latents scaled to unit variance, the
UNet learns ε-prediction (Ho et al., 2020, Algorithm 1) with SD-1.4's noise schedule, conditioned
on captions through a frozen random CLIP text tower (:mod:`svdinst.pocket.data`). An EMA of the
UNet's weights is what gets saved. The result is an ordinary diffusers pipeline folder (written by
:func:`svdinst.models.layouts.save_sd_layout_pipeline`) with a model card and ``SHA256SUMS``.

Deterministic from the seed (initial weights, data order, crops, noise, timesteps) and resumable:
every ``checkpoint_every`` steps the full state goes atomically into ``WORK/checkpoints``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from tqdm.auto import tqdm

from svdinst.device import default_device
from svdinst.errors import RunFolderError
from svdinst.formats.checkpoint import load_latest_checkpoint, save_checkpoint, set_rng_state
from svdinst.formats.folders import prepare_output_folder
from svdinst.formats.run_folder import LossLog, RunFolder
from svdinst.models.clip_vocab import make_clip_tokenizer, padded_ids
from svdinst.models.layouts import SD14_SCHEDULER, sd_layout_modules
from svdinst.pocket.card import write_model_folder
from svdinst.pocket.config import PocketConfig
from svdinst.pocket.init_weights import init_folder, load_init_weights
from svdinst.pocket.sampler import PocketCropSampler


@dataclass
class PretrainResult:
    """What :func:`pretrain` did: the pipeline folder (``None`` if it stopped early) and stats."""

    out: Path | None
    work: Path
    step: int  # global steps done (VAE steps first, then UNet steps)
    stats: dict  # wall time per stage, final losses, scaling factor, device


def lr_at(step: int, total: int, base: float, warmup: int, min_ratio: float) -> float:
    """Linear warm-up for ``warmup`` steps, then a cosine decay to ``min_ratio · base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _gradient_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L1 between the horizontal and vertical finite differences of two image batches."""
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]  # noqa: E731
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]  # noqa: E731
    return F.l1_loss(dx(a), dx(b)) + F.l1_loss(dy(a), dy(b))


def _encode(vae, x: torch.Tensor, generator: torch.Generator):
    """The VAE posterior of ``x`` and a sample z = μ + σ·ε with ε from ``generator``."""
    post = vae.encode(x).latent_dist
    eps = torch.randn(post.mean.shape, generator=generator).to(x.device)
    return post, post.mean + post.std * eps


class _Trainer:
    """State of one pretraining run; :func:`pretrain` drives it."""

    def __init__(self, config: PocketConfig, device: torch.device) -> None:
        cfg = self.cfg = config
        self.device = device
        self.cuda = device.type == "cuda"
        mods = sd_layout_modules(replace(cfg.model, seed=cfg.seed))
        self.scaling_factor: float | None = None
        # before .to(device): the copies land in fp32 on the CPU first
        init_scaling = (
            load_init_weights(mods, init_folder(cfg.init_from), unet=cfg.init_unet)
            if cfg.init_from
            else None
        )
        self.unet, self.vae = mods["unet"].to(device), mods["vae"].to(device)
        self.text_encoder = mods["text_encoder"].to(device).eval().requires_grad_(False)
        self.image_encoder = mods["image_encoder"].eval().requires_grad_(False)
        self.ema = copy.deepcopy(self.unet).eval().requires_grad_(False)
        if init_scaling is not None:
            self._keep_vae(init_scaling)  # the earlier model's VAE stays as it was
        self.scheduler = DDPMScheduler(**{k: SD14_SCHEDULER[k] for k in (
            "beta_start", "beta_end", "beta_schedule", "num_train_timesteps", "clip_sample")})  # fmt: skip
        self.sampler = PocketCropSampler(
            cfg.resolution, cfg.seed, device, cfg.min_crop, cfg.appearance_prob,
            cfg.caption_dropout, styles=cfg.styles, style_prob=cfg.style_prob,
            max_side=cfg.photo_side, supersample=cfg.supersample,
        )  # fmt: skip
        self.caption_embeds = self._embed_captions(self.sampler.captions)
        # fused: one kernel per step instead of a few per tensor (the step is launch-bound)
        kw = {"weight_decay": cfg.weight_decay, "betas": (0.9, 0.99), "fused": self.cuda or None}
        self.vae_opt = torch.optim.AdamW(self.vae.parameters(), lr=cfg.vae_lr, **kw)
        self.unet_opt = torch.optim.AdamW(self.unet.parameters(), lr=cfg.unet_lr, **kw)
        self.seconds = {"prep": 0.0, "vae": 0.0, "unet": 0.0}

    @torch.no_grad()
    def _embed_captions(self, captions: list[str]) -> torch.Tensor:
        """The frozen text tower's hidden states of every caption (computed once)."""
        with tempfile.TemporaryDirectory() as tmp:
            tokenizer = make_clip_tokenizer(Path(tmp))
        return self.text_encoder(padded_ids(tokenizer, captions).to(self.device))[0]

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda)

    def _step(self, opt, module, loss: torch.Tensor, lr: float) -> None:
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), self.cfg.grad_clip)
        opt.step()

    def vae_step(self, k: int) -> tuple[torch.Tensor, float]:
        """One autoencoder step (L1 + gradient L1 + KL); returns (loss on the device, lr)."""
        cfg = self.cfg
        x, _ = self.sampler.sample(cfg.batch_size)
        with self._autocast():
            post, z = _encode(self.vae, x, self.sampler.generator)
            rec = self.vae.decode(z).sample.float()
        mean, logvar = post.mean.float(), post.logvar.float()  # KL to N(0, I) in fp32
        kl = 0.5 * (mean.square() + logvar.exp() - 1 - logvar).mean()  # per latent element
        loss = F.l1_loss(rec, x) + cfg.edge_weight * _gradient_l1(rec, x) + cfg.kl_weight * kl
        lr = lr_at(k, cfg.vae_steps, cfg.vae_lr, cfg.warmup_steps, cfg.min_lr_ratio)
        self._step(self.vae_opt, self.vae, loss, lr)
        return loss.detach(), lr

    @torch.no_grad()
    def measure_scaling_factor(self) -> float:
        """1 / std of the VAE's latents over ``scale_batches`` batches (SD's 0.18215 was so made)."""
        self.vae.eval()
        zs = []
        for _ in range(self.cfg.scale_batches):
            x, _ = self.sampler.sample(self.cfg.batch_size)
            with self._autocast():
                zs.append(_encode(self.vae, x, self.sampler.generator)[1].float())
        self._keep_vae(float(1.0 / torch.cat(zs).std()))
        return self.scaling_factor

    def _keep_vae(self, scaling_factor: float) -> None:
        """The VAE stage is over (trained here or kept from ``init_from``): fix the latents'
        scaling factor and freeze the VAE for the UNet stage."""
        self.scaling_factor = scaling_factor
        self.vae.eval().requires_grad_(False)

    def unet_step(self, k: int) -> tuple[torch.Tensor, float]:
        """One ε-prediction step (DDPM Algorithm 1) on scaled latents; (loss on the device, lr)."""
        cfg, gen = self.cfg, self.sampler.generator
        x, ids = self.sampler.sample(cfg.batch_size)
        with torch.no_grad(), self._autocast():
            z = _encode(self.vae, x, gen)[1].float() * self.scaling_factor
        noise = torch.randn(z.shape, generator=gen).to(self.device)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (z.shape[0],),
                          generator=gen).to(self.device)  # fmt: skip
        noisy = self.scheduler.add_noise(z, noise, t)
        with self._autocast():
            pred = self.unet(noisy, t, self.caption_embeds[ids.to(self.device)]).sample
        loss = F.mse_loss(pred.float(), noise)
        lr = lr_at(k, cfg.unet_steps, cfg.unet_lr, cfg.warmup_steps, cfg.min_lr_ratio)
        self._step(self.unet_opt, self.unet, loss, lr)
        decay = min(cfg.ema_decay, (1 + k) / (10 + k))
        with torch.no_grad():  # one fused call instead of a kernel per tensor
            torch._foreach_lerp_(
                list(self.ema.parameters()), list(self.unet.parameters()), 1 - decay
            )
        return loss.detach(), lr

    def state(self, losses: dict) -> dict:
        cpu = lambda sd: {k: v.detach().cpu() for k, v in sd.items()}  # noqa: E731
        return {
            "vae": cpu(self.vae.state_dict()),
            "unet": cpu(self.unet.state_dict()),
            "ema": cpu(self.ema.state_dict()),
            "vae_opt": self.vae_opt.state_dict(),
            "unet_opt": self.unet_opt.state_dict(),
            "sampler": self.sampler.state(),  # the global RNG states: save_checkpoint adds them
            "scaling_factor": self.scaling_factor,
            "seconds": dict(self.seconds),
            "losses": losses,
        }

    def load(self, state: dict) -> dict:
        self.vae.load_state_dict(state["vae"])
        self.unet.load_state_dict(state["unet"])
        self.ema.load_state_dict(state["ema"])
        self.vae_opt.load_state_dict(state["vae_opt"])
        self.unet_opt.load_state_dict(state["unet_opt"])
        self.sampler.set_state(state["sampler"])
        set_rng_state(state["rng"])
        if state["scaling_factor"] is not None:
            self._keep_vae(state["scaling_factor"])
        self.seconds = dict(state["seconds"])
        return state["losses"]


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → CUDA when present, else the CPU; anything else as given."""
    if device == "auto":
        return torch.device(default_device())
    return torch.device(device)


def _prepare_work(config: PocketConfig, work: RunFolder, resume: bool) -> None:
    if resume:
        if not work.has_config():
            raise RunFolderError(
                f"--resume: '{work.path}' holds no pocket run (no {work.CONFIG}); start without "
                "--resume."
            )
        old = work.read_config()
        new = json.loads(json.dumps(config.to_json()))
        diffs = [f"{k}: {old.get(k)!r} → {v!r}" for k, v in new.items() if old.get(k) != v]
        if diffs:
            raise RunFolderError(
                f"--resume: settings differ from '{work.config_path}' ({'; '.join(diffs)}); "
                "resume with the original settings or start a new run with another --work folder."
            )
        return
    if work.checkpoints.exists():
        raise RunFolderError(
            f"Work folder '{work.path}' already holds a pocket run; pass --resume to continue it, "
            "or delete the folder to start again."
        )
    work.write_config(config.to_json())


def pretrain(
    config: PocketConfig,
    out: str | os.PathLike,
    work: str | os.PathLike | None = None,
    *,
    resume: bool = False,
    device: str = "auto",
    checkpoint_every: int = 500,
    log_every: int = 500,
    stop_after_step: int | None = None,
    max_seconds: float | None = None,
    progress: bool = True,
    overwrite: bool = False,
    loss_read_every: int | None = None,
) -> PretrainResult:
    """Train the pocket VAE, then the UNet, and write the fp16 pipeline folder ``out``.

    Args:
        config (`PocketConfig`): every setting (see its field comments).
        out (`str` or `os.PathLike`): the pipeline folder to write; an earlier pocket model there
            is replaced, a folder of other files is refused unless ``overwrite``.
        work (`str` or `os.PathLike`, *optional*): checkpoints, settings and loss log (a :class:`RunFolder`);
            defaults to ``<out>-work`` next to ``out``.
        resume (`bool`, defaults to `False`): continue from the newest checkpoint in ``work``;
            the result equals an uninterrupted run (same seed, same device).
        device (`str`, defaults to ``"auto"``): ``"auto"``, ``"cpu"``, ``"cuda"``, …
        checkpoint_every (`int`, defaults to 500): steps between checkpoints (also written at
            the end of the VAE stage and when stopping early).
        log_every (`int`, defaults to 500): steps between one-line progress reports on stdout
            (loss of the last 100 steps, steps per second), readable without a terminal.
        stop_after_step (`int`, *optional*): stop (with a checkpoint) once this many global steps
            are done; ``--resume`` continues.
        max_seconds (`float`, *optional*): stop the same way once this much wall time has passed
            in this call (a device command has a time limit; a second call resumes).
        progress (`bool`, defaults to `True`): tqdm bars.
        overwrite (`bool`, defaults to `False`): write into a non-empty ``out`` that svdinst did
            not make (only svdinst's own files are ever replaced).
        loss_read_every (`int`, *optional*): steps whose losses are read from the device at once
            (a read waits for the GPU); defaults to 25 on CUDA, 1 on a CPU. The log is the same.

    Returns:
        `PretrainResult`: ``out`` is `None` when the run stopped before its last step.
    """
    started = time.perf_counter()
    # Checked before hours of training, not when the weights are saved.
    out = prepare_output_folder(out, overwrite=overwrite, what="the pocket model")
    work = Path(work) if work is not None else out.with_name(out.name + "-work")
    folder = RunFolder(work)
    dev = resolve_device(device)
    _prepare_work(config, folder, resume)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    t0 = time.perf_counter()
    trainer = _Trainer(config, dev)
    prep = time.perf_counter() - t0
    print(f"pocket: models and {len(trainer.sampler.pixels)} photos ready on {dev} in {prep:.1f} s")
    start, losses = 0, {"vae": [], "unet": []}
    if resume:
        state = load_latest_checkpoint(work)
        start, losses = state["step"], trainer.load(state)
        print(f"pocket: resumed at step {start} of {config.total_steps}")
    trainer.seconds["prep"] += prep
    log = LossLog(folder.log_path, start)
    cfg, step = config, start
    bar = tqdm(total=cfg.total_steps, initial=start, desc="pocket pretrain", disable=not progress)
    loop_start = time.perf_counter()
    # Reading a loss waits for the GPU; losses are read in groups so the CPU can queue the next
    # steps meanwhile (one read per step kept the v1 UNet stage launch-bound).
    sync_every = loss_read_every or (25 if dev.type == "cuda" else 1)
    pending: list[tuple[int, str, torch.Tensor, float]] = []

    def flush() -> None:
        if not pending:
            return
        values = torch.stack([p[2].float() for p in pending]).tolist()  # one device sync
        seconds = trainer.seconds["vae"] + trainer.seconds["unet"]  # at the group's end
        for (at, stg, _, lr_), value in zip(pending, values):
            if not math.isfinite(value):
                raise FloatingPointError(f"pocket: {stg} loss became {value} at step {at}.")
            losses[stg].append(value)
            log.write(at, value, lr_, seconds)
        bar.set_postfix(stage=pending[-1][1], loss=f"{values[-1]:.4f}")
        pending.clear()

    try:
        while step < cfg.total_steps:
            stage = "vae" if step < cfg.vae_steps else "unet"
            if stage == "unet" and trainer.scaling_factor is None:
                flush()
                sf = trainer.measure_scaling_factor()
                print(f"pocket: VAE done in {trainer.seconds['vae']:.0f} s, final loss "
                      f"{_tail_mean(losses['vae']):.4f}; latent scaling_factor {sf:.5f}")  # fmt: skip
            tic = time.perf_counter()
            if stage == "vae":
                loss, lr = trainer.vae_step(step)
            else:
                loss, lr = trainer.unet_step(step - cfg.vae_steps)
            step += 1
            pending.append((step, stage, loss, lr))
            if len(pending) >= sync_every:
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)  # the group's GPU time counts toward its stage
                trainer.seconds[stage] += time.perf_counter() - tic
                flush()
            else:
                trainer.seconds[stage] += time.perf_counter() - tic
            bar.update(1)
            if step % max(1, log_every) == 0:
                flush()
                rate = (step - start) / (time.perf_counter() - loop_start)
                tqdm.write(f"pocket: step {step}/{cfg.total_steps} {stage} loss "
                           f"{_tail_mean(losses[stage]):.4f} lr {lr:.2e} {rate:.1f} steps/s")  # fmt: skip
            stop = (stop_after_step is not None and step >= stop_after_step) or (
                max_seconds is not None and time.perf_counter() - started > max_seconds
            )
            boundary = step == cfg.vae_steps or step % max(1, checkpoint_every) == 0
            if step < cfg.total_steps and (boundary or stop):
                flush()
                save_checkpoint(work, step, trainer.state(losses))
            if stop and step < cfg.total_steps:
                print(f"pocket: stopped at step {step} of {cfg.total_steps}; continue with "
                      f"--resume (checkpoint in {folder.checkpoints})")  # fmt: skip
                return PretrainResult(None, work, step, {})
        flush()
    finally:
        bar.close()
        log.close()
    stats = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU",
        "seconds_prep": trainer.seconds["prep"],
        "seconds_vae": trainer.seconds["vae"],
        "seconds_unet": trainer.seconds["unet"],
        "loss_vae": _tail_mean(losses["vae"]),
        "loss_unet": _tail_mean(losses["unet"]),
        "scaling_factor": trainer.scaling_factor,
    }
    print(
        f"pocket: UNet done in {stats['seconds_unet']:.0f} s, final loss {stats['loss_unet']:.4f}"
    )
    trainer.vae.register_to_config(scaling_factor=trainer.scaling_factor)
    modules = {"unet": trainer.ema, "vae": trainer.vae, "text_encoder": trainer.text_encoder,
               "image_encoder": trainer.image_encoder}  # fmt: skip
    modules = {k: m.to("cpu") for k, m in modules.items()}
    write_model_folder(out, modules, config, stats)
    print(f"pocket: wrote {out} ({time.perf_counter() - started:.0f} s in this call)")
    return PretrainResult(out, work, step, stats)


def _tail_mean(values: list[float], n: int = 100) -> float:
    """Mean of the last ``n`` losses (a less noisy "final loss")."""
    tail = values[-n:]
    return sum(tail) / len(tail) if tail else float("nan")
