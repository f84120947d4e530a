"""StarGAN (Choi et al., CVPR 2018, "StarGAN: Unified Generative Adversarial Networks for
Multi-Domain Image-to-Image Translation") with two domains: photo (label 0) and mural (label 1).

One generator G(x, c) conditioned on a one-hot target domain c (tiled over the image), one
PatchGAN critic D with two heads — D_src (real/fake, per patch) and D_cls (domain logits). The
losses are Eq. 1–7 of the paper with the WGAN-GP adversarial objective (Eq. 8, λ_gp = 10):

- D: −D_src(x) + D_src(G(x, c)) + λ_cls·CE(D_cls(x), c') + λ_gp·(‖∇D_src(x̂)‖₂ − 1)²
- G (every ``n_critic`` steps): −D_src(G(x, c)) + λ_cls·CE(D_cls(G(x, c)), c)
  + λ_rec·‖x − G(G(x, c), c')‖₁

Defaults follow the authors' code (``main.py``): G 64 conv dim with 6 residual blocks, D 64
conv dim with 6 stride-2 layers, Adam 1e-4 (β = 0.5, 0.999), batch 16, n_critic = 5, linear lr
decay over the second half. Two differences, both documented: instance norm uses instance
statistics at inference too (the authors' code never switches G to eval mode, so it does the
same), and every batch holds half photos, half murals (our mural set is tiny; uniform sampling
over the pooled images would show D a mural only every few batches).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from svdinst.baselines.base import Baseline, register
from svdinst.baselines.common import (
    GeneratorState,
    ImageSampler,
    fit_loop,
    fixed_seed,
    linear_decay_scheduler,
    seed_everything,
    translate_each,
)

PHOTO, MURAL = 0, 1  # domain labels


@dataclass
class StarGANConfig:
    """StarGAN's published defaults (the authors' ``main.py``), two domains."""

    resolution: int = 256  # crop size (the paper: 128 on CelebA, 256 on RaFD)
    c_dim: int = 2  # domains: photo, mural
    g_conv_dim: int = 64  # G width of the first conv (64-128-256)
    d_conv_dim: int = 64  # D width of the first conv, doubled at every stride-2 layer
    g_repeat_num: int = 6  # residual blocks in G (the paper's appendix: 6)
    d_repeat_num: int = 6  # stride-2 layers in D; reduced for small crops so the cls kernel ≥ 1
    lambda_cls: float = 1.0  # domain classification loss weight (Eq. 7)
    lambda_rec: float = 10.0  # cycle reconstruction weight (Eq. 7)
    lambda_gp: float = 10.0  # gradient-penalty weight of WGAN-GP (Gulrajani et al.)
    n_critic: int = 5  # D updates per G update (WGAN-GP practice)
    lr: float = 1e-4  # Adam learning rate of both G and D
    beta1: float = 0.5  # Adam β1
    beta2: float = 0.999  # Adam β2
    batch_size: int = 16  # half photos, half murals (see the module docstring)
    decay_fraction: float = 0.5  # 200k iterations, lr decays linearly over the last 100k


class ResidualBlock(nn.Module):
    """conv3-IN-ReLU-conv3-IN with identity skip (bias-free convs: IN has affine parameters)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(dim, affine=True),
            nn.ReLU(True),
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(dim, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


class Generator(nn.Module):
    """G(x, c): x concatenated with c tiled to H×W → 7×7 conv, 2 down, residual blocks, 2 up, tanh."""

    def __init__(self, conv_dim: int = 64, c_dim: int = 2, repeat_num: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3 + c_dim, conv_dim, 7, 1, 3, bias=False),
            nn.InstanceNorm2d(conv_dim, affine=True),
            nn.ReLU(True),
        ]
        dim = conv_dim
        for _ in range(2):
            layers += [
                nn.Conv2d(dim, dim * 2, 4, 2, 1, bias=False),
                nn.InstanceNorm2d(dim * 2, affine=True),
                nn.ReLU(True),
            ]
            dim *= 2
        layers += [ResidualBlock(dim) for _ in range(repeat_num)]
        for _ in range(2):
            layers += [
                nn.ConvTranspose2d(dim, dim // 2, 4, 2, 1, bias=False),
                nn.InstanceNorm2d(dim // 2, affine=True),
                nn.ReLU(True),
            ]
            dim //= 2
        layers += [nn.Conv2d(dim, 3, 7, 1, 3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        c = c.view(c.size(0), c.size(1), 1, 1).expand(-1, -1, x.size(2), x.size(3))
        return self.main(torch.cat([x, c], dim=1))


class Discriminator(nn.Module):
    """PatchGAN critic: ``repeat_num`` 4×4 stride-2 convs (LeakyReLU 0.01, no norm), then a 3×3
    conv to one score per patch (D_src) and an (H/2^n)-sized conv to ``c_dim`` logits (D_cls)."""

    def __init__(self, image_size: int, conv_dim: int = 64, c_dim: int = 2, repeat_num: int = 6):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, conv_dim, 4, 2, 1), nn.LeakyReLU(0.01)]
        dim = conv_dim
        for _ in range(1, repeat_num):
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1), nn.LeakyReLU(0.01)]
            dim *= 2
        self.main = nn.Sequential(*layers)
        self.conv_src = nn.Conv2d(dim, 1, 3, 1, 1, bias=False)
        self.conv_cls = nn.Conv2d(dim, c_dim, image_size // 2**repeat_num, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.main(x)
        return self.conv_src(h), self.conv_cls(h).flatten(1)


def gradient_penalty(critic_out: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017, Eq. 3): mean over samples of (‖∇_x̂ D(x̂)‖₂ − 1)²."""
    (grad,) = torch.autograd.grad(
        critic_out, x_hat, torch.ones_like(critic_out), create_graph=True, retain_graph=True
    )
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


@register
class StarGAN(Baseline):
    """Two-domain StarGAN; :meth:`stylize` computes G(photo, c = mural)."""

    name = "stargan"
    config_class = StarGANConfig

    def __init__(self, config: StarGANConfig | None = None, device: str = "cpu") -> None:
        super().__init__(config, device)
        c = self.config
        # Keep the classification kernel ≥ 1 px: at most log2(resolution) stride-2 layers.
        self.d_repeat = min(c.d_repeat_num, int(math.log2(c.resolution)))
        with fixed_seed(0):  # PyTorch's default init, as in the authors' code
            self.G = Generator(c.g_conv_dim, c.c_dim, c.g_repeat_num).to(self.device)
            self.D = Discriminator(c.resolution, c.d_conv_dim, c.c_dim, self.d_repeat)
        self.D.to(self.device)

    @classmethod
    def tiny_config(cls, resolution: int = 64) -> StarGANConfig:
        """Width 8 for G and D, batch 2 (one photo, one mural)."""
        return StarGANConfig(resolution=resolution, g_conv_dim=8, d_conv_dim=8, batch_size=2)

    def _onehot(self, labels: torch.Tensor) -> torch.Tensor:
        return F.one_hot(labels, self.config.c_dim).float()

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
        """One critic step per iteration; a generator step every ``n_critic`` iterations.

        Args:
            content_dir: photos (domain 0). style_dir: murals (domain 1).
            steps (`int`): iterations (the paper: 200,000 at batch 16).
            out_dir, checkpoint_every, resume, seed: see :func:`svdinst.baselines.common.fit_loop`.
        """
        c = self.config
        seed_everything(seed)
        photos = ImageSampler(content_dir, c.resolution, seed=seed)
        murals = ImageSampler(style_dir, c.resolution, seed=seed + 1)
        opt_g = torch.optim.Adam(self.G.parameters(), c.lr, betas=(c.beta1, c.beta2))
        opt_d = torch.optim.Adam(self.D.parameters(), c.lr, betas=(c.beta1, c.beta2))
        # G steps once per n_critic iterations, so its schedule counts G steps.
        sched_g = linear_decay_scheduler(opt_g, max(steps // c.n_critic, 1), c.decay_fraction)
        sched_d = linear_decay_scheduler(opt_d, steps, c.decay_fraction)
        label_gen = torch.Generator().manual_seed(seed + 2)
        self.G.train()
        self.D.train()
        n_photo = max(c.batch_size // 2, 1)
        n_mural = max(c.batch_size - n_photo, 1)

        def step(i: int) -> dict[str, float]:
            x = torch.cat([photos.sample(n_photo), murals.sample(n_mural)]).to(self.device)
            org = torch.tensor([PHOTO] * n_photo + [MURAL] * n_mural)
            trg = org[torch.randperm(len(org), generator=label_gen)]  # as the authors: shuffle
            org, trg = org.to(self.device), trg.to(self.device)
            c_org, c_trg = self._onehot(org), self._onehot(trg)
            # Critic: Wasserstein estimate + domain classification of real images + GP.
            out_src, out_cls = self.D(x)
            with torch.no_grad():
                fake = self.G(x, c_trg)
            fake_src, _ = self.D(fake)
            alpha = torch.rand(x.size(0), 1, 1, 1, device=self.device)
            x_hat = (alpha * x + (1 - alpha) * fake).requires_grad_(True)
            hat_src, _ = self.D(x_hat)
            d_adv = -out_src.mean() + fake_src.mean()
            d_cls = F.cross_entropy(out_cls, org)
            d_gp = gradient_penalty(hat_src, x_hat)
            d_loss = d_adv + c.lambda_cls * d_cls + c.lambda_gp * d_gp
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            terms = {"d_adv": d_adv.item(), "d_cls": d_cls.item(), "d_gp": d_gp.item()}
            total = d_loss.item()
            if (i + 1) % c.n_critic == 0:  # generator: fool D, be classified as c, cycle back
                fake = self.G(x, c_trg)
                fake_src, fake_cls = self.D(fake)
                g_adv = -fake_src.mean()
                g_cls = F.cross_entropy(fake_cls, trg)
                g_rec = (x - self.G(fake, c_org)).abs().mean()
                g_loss = g_adv + c.lambda_rec * g_rec + c.lambda_cls * g_cls
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                sched_g.step()
                terms.update(g_adv=g_adv.item(), g_cls=g_cls.item(), g_rec=g_rec.item())
                total += g_loss.item()
            sched_d.step()
            return {"loss": total, **terms}

        objects = {
            "G": self.G, "D": self.D, "opt_g": opt_g, "opt_d": opt_d,
            "sched_g": sched_g, "sched_d": sched_d, "photos": photos, "murals": murals,
            "labels": GeneratorState(label_gen),
        }  # fmt: skip
        losses = fit_loop(
            step, steps, objects=objects, out_dir=out_dir, checkpoint_every=checkpoint_every,
            resume=resume, desc=self.name, lr_fn=lambda: sched_d.get_last_lr()[0],
        )  # fmt: skip
        self.G.eval()
        return losses

    def stylize(
        self, images: list[Image.Image], style: list[Image.Image] | None = None
    ) -> list[Image.Image]:
        """G(photo, mural one-hot) at each photo's own size; ``style`` is not used."""
        self.G.eval()
        target = self._onehot(torch.tensor([MURAL], device=self.device))
        return translate_each(images, lambda x, _: self.G(x, target), self.device, multiple=4)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The generator (the critic is only needed for training and lives in checkpoints)."""
        return self.G.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.G.load_state_dict(state)
