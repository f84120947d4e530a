"""CycleGAN (Zhu et al., ICCV 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks"): two ResNet generators G: photo→mural, F: mural→photo and two 70×70
PatchGAN discriminators, trained with the least-squares GAN loss (§4, Eq. 1 with LSGAN), the
cycle-consistency loss (Eq. 2, λ = 10) and the identity loss (§5.2, weight 0.5·λ).

Architecture and defaults follow the authors' PyTorch code (Johnson et al.'s ResNet-9 generator
with reflection padding and instance norm; ``n_layers = 3`` PatchGAN; Adam 2e-4, β1 = 0.5;
batch 1; a 50-image history pool; constant learning rate for the first half, then linear decay
to zero). Written from the paper and the public code's facts, not copied.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from svdinst.baselines.base import Baseline, register
from svdinst.baselines.common import (
    ImagePool,
    ImageSampler,
    fit_loop,
    fixed_seed,
    init_normal,
    linear_decay_scheduler,
    seed_everything,
    set_requires_grad,
    translate_each,
)


@dataclass
class CycleGANConfig:
    """CycleGAN's published defaults (``train.py`` options of the authors' code)."""

    resolution: int = 256  # crop size; the paper trains 256×256 crops of 286-px resized images
    ngf: int = 64  # generator width of the first layer (ResNet-9: 64-128-256)
    ndf: int = 64  # discriminator width of the first layer (64-128-256-512)
    n_blocks: int = 9  # residual blocks: 9 for 256-px images (6 for 128 px) — Johnson et al.
    n_layers_d: int = 3  # 3 stride-2 convs give the 70×70 receptive field of the PatchGAN
    lambda_cycle: float = 10.0  # λ of Eq. 3: cycle loss weight for both directions
    lambda_identity: float = 0.5  # identity loss weight relative to λ (§5.2; keeps colours)
    lr: float = 2e-4  # Adam learning rate of both G and D
    beta1: float = 0.5  # Adam β1 = 0.5, as in DCGAN, stabilises adversarial training
    batch_size: int = 1  # the paper trains with batch 1 (instance norm)
    pool_size: int = 50  # history of generated images shown to D (Shrivastava et al.)
    decay_fraction: float = 0.5  # lr constant for 100 epochs then linearly to 0 over 100 more


class ResnetBlock(nn.Module):
    """Two 3×3 reflection-padded convs with instance norm and a skip connection."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            nn.InstanceNorm2d(dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3),
            nn.InstanceNorm2d(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """c7s1-64, d128, d256, R256×9, u128, u64, c7s1-3 (the paper's appendix 7.2), tanh output.

    Instance norm without affine parameters, so convolutions keep their biases; 11,378,179
    parameters at ``ngf = 64, n_blocks = 9``.
    """

    def __init__(self, ngf: int = 64, n_blocks: int = 9, channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(channels, ngf, 7),
            nn.InstanceNorm2d(ngf),
            nn.ReLU(True),
        ]
        for mult in (1, 2):  # two stride-2 down-samplings
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1),
                nn.InstanceNorm2d(ngf * mult * 2),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for mult in (4, 2):  # two fractionally-strided up-samplings
            layers += [
                nn.ConvTranspose2d(
                    ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1
                ),
                nn.InstanceNorm2d(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """The 70×70 PatchGAN (C64-C128-C256-C512, then a 1-channel conv): one real/fake score per
    overlapping 70×70 patch. No norm on the first layer; LeakyReLU 0.2."""

    def __init__(self, ndf: int = 64, n_layers: int = 3, channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(channels, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1  # the last C-layer keeps the resolution
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1),
                nn.InstanceNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers += [nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def lsgan_loss(prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al. 2017): mean (D(x) − 1)² for real, D(x)² for fake."""
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    return F.mse_loss(prediction, target)


@register
class CycleGAN(Baseline):
    """Photo (domain A) ↔ mural (domain B) CycleGAN; :meth:`stylize` applies G_A: A → B."""

    name = "cyclegan"
    config_class = CycleGANConfig

    def __init__(self, config: CycleGANConfig | None = None, device: str = "cpu") -> None:
        super().__init__(config, device)
        c = self.config
        with fixed_seed(0):  # the same initial weights whatever ran before
            self.G_A = ResnetGenerator(c.ngf, c.n_blocks)
            self.G_B = ResnetGenerator(c.ngf, c.n_blocks)
            self.D_A = PatchDiscriminator(c.ndf, c.n_layers_d)  # judges domain B (murals)
            self.D_B = PatchDiscriminator(c.ndf, c.n_layers_d)  # judges domain A (photos)
            for net in (self.G_A, self.G_B, self.D_A, self.D_B):
                init_normal(net, 0.02)
        for net in (self.G_A, self.G_B, self.D_A, self.D_B):
            net.to(self.device)

    @classmethod
    def tiny_config(cls, resolution: int = 64) -> CycleGANConfig:
        """ResNet-9 and the 3-layer PatchGAN at width 8 (the full model is ~45× wider)."""
        return CycleGANConfig(resolution=resolution, ngf=8, ndf=8, pool_size=4)

    def fit(
        self,
        content_dir: str | os.PathLike,
        style_dir: str | os.PathLike,
        steps: int,
        *,
        out_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 0,
        resume: bool = False,
        seed: int = 0,
    ) -> list[float]:
        """Alternate one generator step (Eq. 3 + identity) and one discriminator step per batch.

        Args:
            content_dir: photos (domain A). style_dir: murals (domain B).
            steps (`int`): iterations (the paper: 200 epochs × dataset size at batch 1).
            out_dir, checkpoint_every, resume, seed: see :func:`svdinst.baselines.common.fit_loop`.
        """
        c = self.config
        seed_everything(seed)
        real_a_sampler = ImageSampler(content_dir, c.resolution, seed=seed)
        real_b_sampler = ImageSampler(style_dir, c.resolution, seed=seed + 1)
        pool_a, pool_b = ImagePool(c.pool_size, seed), ImagePool(c.pool_size, seed + 1)
        g_params = [*self.G_A.parameters(), *self.G_B.parameters()]
        d_params = [*self.D_A.parameters(), *self.D_B.parameters()]
        opt_g = torch.optim.Adam(g_params, lr=c.lr, betas=(c.beta1, 0.999))
        opt_d = torch.optim.Adam(d_params, lr=c.lr, betas=(c.beta1, 0.999))
        sched_g = linear_decay_scheduler(opt_g, steps, c.decay_fraction)
        sched_d = linear_decay_scheduler(opt_d, steps, c.decay_fraction)
        for net in (self.G_A, self.G_B, self.D_A, self.D_B):
            net.train()
        lam, lam_idt = c.lambda_cycle, c.lambda_cycle * c.lambda_identity

        def step(_: int) -> dict[str, float]:
            real_a = real_a_sampler.sample(c.batch_size).to(self.device)
            real_b = real_b_sampler.sample(c.batch_size).to(self.device)
            # Generators: adversarial + cycle (Eq. 2) + identity, with both D frozen.
            set_requires_grad([self.D_A, self.D_B], False)
            fake_b, fake_a = self.G_A(real_a), self.G_B(real_b)
            rec_a, rec_b = self.G_B(fake_b), self.G_A(fake_a)
            loss_idt = lam_idt * (
                F.l1_loss(self.G_A(real_b), real_b) + F.l1_loss(self.G_B(real_a), real_a)
            )
            loss_gan = lsgan_loss(self.D_A(fake_b), True) + lsgan_loss(self.D_B(fake_a), True)
            loss_cycle = lam * (F.l1_loss(rec_a, real_a) + F.l1_loss(rec_b, real_b))
            loss_g = loss_gan + loss_cycle + loss_idt
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            # Discriminators: ½(real → 1, pooled fake → 0), each on its own domain.
            set_requires_grad([self.D_A, self.D_B], True)
            fake_b_pool, fake_a_pool = pool_b.query(fake_b), pool_a.query(fake_a)
            loss_d_a = 0.5 * (
                lsgan_loss(self.D_A(real_b), True) + lsgan_loss(self.D_A(fake_b_pool), False)
            )
            loss_d_b = 0.5 * (
                lsgan_loss(self.D_B(real_a), True) + lsgan_loss(self.D_B(fake_a_pool), False)
            )
            opt_d.zero_grad(set_to_none=True)
            (loss_d_a + loss_d_b).backward()
            opt_d.step()
            sched_g.step()
            sched_d.step()
            return {
                "loss": (loss_g + loss_d_a + loss_d_b).item(),
                "g_gan": loss_gan.item(),
                "cycle": loss_cycle.item(),
                "identity": loss_idt.item(),
                "d": (loss_d_a + loss_d_b).item(),
            }

        objects = {
            "G_A": self.G_A, "G_B": self.G_B, "D_A": self.D_A, "D_B": self.D_B,
            "opt_g": opt_g, "opt_d": opt_d, "sched_g": sched_g, "sched_d": sched_d,
            "sampler_a": real_a_sampler, "sampler_b": real_b_sampler,
            "pool_a": pool_a, "pool_b": pool_b,
        }  # fmt: skip
        losses = fit_loop(
            step, steps, objects=objects, out_dir=out_dir, checkpoint_every=checkpoint_every,
            resume=resume, desc=self.name, lr_fn=lambda: sched_g.get_last_lr()[0],
        )  # fmt: skip
        self.G_A.eval()
        self.G_B.eval()
        return losses

    def stylize(
        self, images: list[Image.Image], style: list[Image.Image] | None = None
    ) -> list[Image.Image]:
        """Apply G_A (photo → mural) to each photo at its own size; ``style`` is not used."""
        self.G_A.eval()
        return translate_each(images, lambda x, _: self.G_A(x), self.device, multiple=4)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Both generators (G_A photo→mural is what :meth:`stylize` uses; G_B the inverse)."""
        return {
            **{f"G_A.{k}": v for k, v in self.G_A.state_dict().items()},
            **{f"G_B.{k}": v for k, v in self.G_B.state_dict().items()},
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for prefix, net in (("G_A.", self.G_A), ("G_B.", self.G_B)):
            net.load_state_dict(
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            )
