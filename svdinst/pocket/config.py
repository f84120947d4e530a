"""Every setting of a pocket pretraining run: :class:`PocketConfig`.

Kept apart from :mod:`svdinst.pocket.pretrain` so ``svdinst pocket pretrain --help`` shows the
defaults without importing torch or diffusers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from svdinst.models.layout_config import SDLayoutConfig


@dataclass
class PocketConfig:
    """Every setting of a pocket pretraining run (the work folder's settings file, ``RunFolder.CONFIG``).

    The defaults are the GPU recipe: about five minutes on one H100 including data preparation.
    """

    seed: int = 0  # drives the initial weights, crops, noise and timesteps: runs repeat exactly
    resolution: int = 96  # training crop side; the pocket profile stylizes at this size
    vae_steps: int = 3000  # CPU check: 400 steps at batch 8 still blur; 3k × 32 is ~40 s on a GPU
    unet_steps: int = 8000  # small diffusion models keep improving for long; 8k fits the budget
    batch_size: int = 32  # per step, both stages
    vae_lr: float = 4e-4  # AdamW; a small conv VAE trains stably at this rate
    unet_lr: float = 4e-4  # AdamW; with EMA, a high rate trains a 5 M UNet fast
    warmup_steps: int = 200  # linear ramp per stage, then a cosine decay
    min_lr_ratio: float = 0.1  # cosine ends at this fraction of the rate
    weight_decay: float = 1e-2  # AdamW default
    grad_clip: float = 1.0  # max gradient norm; keeps early diffusion steps from spiking
    kl_weight: float = 1e-5  # per-element KL weight: latents stay near N(0, I) but carry detail
    edge_weight: float = 0.5  # L1 on image gradients: sharper reconstructions without LPIPS
    ema_decay: float = 0.999  # UNet EMA (warmed up as (1 + k) / (10 + k)); saved weights are EMA
    caption_dropout: float = 0.1  # empty captions teach the unconditional branch (guidance)
    appearance_prob: float = 0.5  # share of crops with a captioned appearance edit
    min_crop: float = 0.3  # smallest crop side / photo's shorter side (log-uniform up to 1)
    scale_batches: int = 8  # batches whose latent std sets the VAE's scaling_factor
    styles: tuple[str, ...] = ()  # svdinst.data.styles names: the style space (v1 had none)
    style_prob: float = 0.0  # share of crops cut from a styled copy, captioned "… in <style>"
    photo_side: int = 512  # photos downscaled to this longest side before cropping
    supersample: int = 2  # crop sampler: grid points per pixel and axis (anti-aliasing)
    model: SDLayoutConfig = field(default_factory=SDLayoutConfig.pocket)  # sizes of the networks
    # An earlier pocket model folder (or a shipped version's name) to continue from: its VAE is
    # kept frozen with its scaling factor (vae_steps must be 0), its UNet's weights start both the
    # trained UNet and its EMA, its text and image towers are reused. "" = train from scratch.
    init_from: str = ""
    # With init_from: False keeps only its VAE and towers and trains a new UNet from scratch (a
    # wider layout cannot load the earlier UNet's weights).
    init_unet: bool = True

    @classmethod
    def preset(cls, version: str, **overrides: object) -> PocketConfig:
        """The recipe of a pocket version (``"pocket-v1"`` to ``"pocket-v5"``), then ``overrides``.

        pocket-v2 adds the procedural styles of :mod:`svdinst.data.styles` (half the crops),
        128 px with an f = 4 VAE trained longer (the mural proxy's cracks must survive it), and
        fits ≤ 7 min on one H200 with the batched sampler (``benchmarks/pocket_pretrain.sh``).
        pocket-v3 continues pocket-v2's UNet on its frozen VAE with 4× larger batches (v2's
        UNet read the style words too weakly to tell woodcut from blueprint at img2img).
        pocket-v5 trains a 1.6× wider UNet from scratch on pocket-v2's frozen VAE and towers.
        """
        from svdinst.data.styles import STYLES, STYLES_V2  # numpy/scipy only, still no torch

        presets: dict[str, dict] = {
            "pocket-v1": {},
            "pocket-v2": dict(
                resolution=128,  # the proxy's 1-px cracks need pixels; f = 4 keeps 32² latents
                # v1's UNet step cost ~0.11 s on an H100 whatever the batch (Python op dispatch,
                # not FLOPs): v2 trains on 4× larger batches for fewer steps, 1,500 + 2,500 steps
                # ≈ 6–7 min with model building (benchmarks/pocket_pretrain.sh measures it).
                vae_steps=1500,  # 192k crops (v1: 96k); decides what texture survives
                unet_steps=2500,  # 320k crops (v1: 256k)
                batch_size=128,
                vae_lr=8e-4,  # larger batch, fewer steps than v1's 4e-4 at 32
                unet_lr=8e-4,
                warmup_steps=100,
                ema_decay=0.998,  # 2.5k steps: a 0.999 EMA would still lean on early weights
                edge_weight=1.0,  # sharper: outlines and cracks are edges
                kl_weight=1e-6,
                styles=STYLES_V2,
                style_prob=0.5,
                photo_side=384,  # 128 px crops from ≥ 115 px: downscale ≤ 3×, no aliasing
                supersample=3,
                model=SDLayoutConfig.pocket_v2(),
            ),
        }
        presets["pocket-v3"] = dict(
            presets["pocket-v2"],
            init_from="pocket-v2",  # its VAE (frozen), UNet and towers: v3 is v2 trained further
            vae_steps=0,
            # v2's step was launch-bound at batch 128 (86 ms on an H100); at 512 it took 204 ms
            # (2,512 crops/s vs 1,480), and benchmarks/pocket_step_time.py sized the run to one
            # device call: 1,600 steps, 5.2 min on an H100 (v2 + v3 together: 13.4 min).
            unet_steps=1600,
            batch_size=512,
            unet_lr=6e-4,  # below v2's peak: the weights start trained
            warmup_steps=200,
            ema_decay=0.999,
            style_prob=0.6,  # the style words are what InST steers with; more styled crops
            model=SDLayoutConfig.pocket_v3(),
        )
        presets["pocket-v4"] = dict(
            presets["pocket-v3"],
            init_from="pocket-v3",  # v4 is v3's UNet trained further, on the same frozen VAE
            # v3's seven styles plus three that use the held-out proxy's techniques one at a time
            # (flat fills in outlines, craquelure, paint loss) in non-mural palettes: the proxy
            # should lie *inside* the style space, not beside it (v3's outputs showed none of it).
            # Trained once (6.4 min, H100) and NOT shipped: the pocket experiment came out worse
            # than on v3 (reports/benchmarks.md, issue 17); kept so the result can be rebuilt.
            styles=tuple(STYLES),
            unet_steps=1800,  # 190 ms a step at batch 512 on an H100: ~6 min, one device call
            model=SDLayoutConfig.pocket_v4(),
        )
        presets["pocket-v5"] = dict(
            presets["pocket-v3"],
            init_from="pocket-v2",  # its VAE (frozen) and towers; the UNet is new and wider
            init_unet=False,
            # pocket-v3's samples draw the caption's style in 27 % of cases (chance 12 %;
            # `svdinst pocket style-check`): more UNet, trained from scratch on v3's data mix.
            # v2's VAE took 4.0 min of the 20-min budget. 4,000 steps is an untimed default
            # (v3's narrower UNet: 190–204 ms a step at batch 512 on an H100); with
            # UNET_MINUTES=15, pocket_pretrain.sh times a step (pocket_step_time.py) and
            # replaces it, resuming across two device calls.
            unet_steps=4000,
            unet_lr=8e-4,  # v2's peak: from scratch
            warmup_steps=200,
            model=SDLayoutConfig.pocket_v5(),
        )
        if version not in presets:
            raise ValueError(f"Unknown pocket version {version!r}; choose from {sorted(presets)}.")
        return cls(**{**presets[version], **overrides})

    def __post_init__(self) -> None:
        self.styles = tuple(self.styles)  # a list when read back from the settings file
        if isinstance(self.model, dict):  # read back from the settings file
            m = dict(self.model)
            for key in ("unet_channels", "vae_channels"):
                m[key] = tuple(m[key])
            self.model = SDLayoutConfig(**m)
        factor = 2 ** (len(self.model.vae_channels) - 1)
        down = 2 ** (len(self.model.unet_channels) - 1)
        if self.resolution % (factor * down):
            raise ValueError(
                f"resolution {self.resolution} must be a multiple of {factor * down} (VAE factor "
                f"{factor} × UNet downsampling {down})."
            )
        if min(self.unet_steps, self.batch_size) < 1:
            raise ValueError("unet_steps and batch_size must be ≥ 1.")
        if bool(self.init_from) == (self.vae_steps > 0):
            raise ValueError(
                "vae_steps must be ≥ 1 when training from scratch and 0 with init_from (the "
                f"earlier model's VAE is kept); got vae_steps={self.vae_steps}, "
                f"init_from={self.init_from!r}."
            )

    @property
    def total_steps(self) -> int:
        return self.vae_steps + self.unet_steps

    def to_json(self) -> dict:
        return asdict(self)
