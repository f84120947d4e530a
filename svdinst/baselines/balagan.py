"""BalaGAN (Patashnik, Danon, Zhang & Cohen-Or, CVPR-W 2021, "BalaGAN: Cross-Modal Image
Translation Between Imbalanced Domains"), compact.

Idea (§3): the rich domain (photos) is split into k pseudo-domains by clustering; the scarce
domain (our few murals) is one more class. A multi-class translator in the style of FUNIT
(Liu et al. 2019) then learns translations between all k + 1 classes, so the rare class benefits
from what is learned on the rich ones:

- content encoder E_c (conv + 3 stride-2 downs + 2 residual blocks, instance norm),
- class/style encoder E_s (4 stride-2 downs, global pooling → a 64-d code; a class code is the
  mean code of that class's images),
- decoder with AdaIN residual blocks whose scales/biases an MLP predicts from the class code,
- a multi-task discriminator: one real/fake output channel per class, the class's channel used.

Losses (FUNIT Eq. 1–4): hinge GAN (weight 1), image reconstruction ‖x − G(E_c(x), E_s(x))‖₁
(weight 0.1), feature matching on D's pooled features (weight 1); R1 gradient penalty on reals
(weight 10). Adam 1e-4, β = (0.5, 0.999), weight decay 1e-4.

Simplifications (honest list): the paper clusters photos with a contrastively trained encoder
(SCAN-like) and refines clusters during training; here k-means runs once on colour/layout
descriptors of the training photos (k ≤ number of photos). Batches draw the target class as the
mural class half of the time (the rare class would almost never be drawn otherwise). The report
found BalaGAN unsuited to one-artist mural sets; the kit trains it anyway so the comparison shows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from svdinst.baselines.base import Baseline, register
from svdinst.baselines.common import (
    GeneratorState,
    ImageSampler,
    center_square,
    fit_loop,
    fixed_seed,
    seed_everything,
    translate_each,
)


@dataclass
class BalaGANConfig:
    """Defaults of FUNIT's published config (``funit_animals.yaml``) that BalaGAN builds on."""

    resolution: int = 128  # FUNIT/BalaGAN train 128-px crops
    n_clusters: int = 8  # photo pseudo-domains (capped at the number of photos)
    nf: int = 64  # width of the first conv of every network
    nf_mlp: int = 256  # hidden width of the AdaIN-parameter MLP
    latent_dim: int = 64  # class-code size
    n_res_blocks: int = 2  # residual blocks in the content encoder and decoder
    n_downs_content: int = 3  # content code at 1/8 resolution keeps layout
    n_downs_class: int = 4  # class code pools a 1/16 feature map
    n_res_blocks_d: int = 10  # discriminator depth (5 stages of 2 act-first residual blocks)
    gan_w: float = 1.0  # hinge adversarial loss weight
    r_w: float = 0.1  # image reconstruction weight
    fm_w: float = 1.0  # feature matching weight
    gp_w: float = 10.0  # R1 penalty on real images (Mescheder et al. 2018)
    lr: float = 1e-4  # Adam learning rate of G and D
    weight_decay: float = 1e-4  # as in FUNIT
    batch_size: int = 64  # FUNIT's batch; use less on small GPUs
    mural_fraction: float = 0.5  # share of batches whose target class is the mural class


def _conv_block(cin: int, cout: int, k: int, s: int, norm: bool, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.ReflectionPad2d(k // 2 if s == 1 else 1),
        nn.Conv2d(cin, cout, k, s),
    ]
    if norm:
        layers.append(nn.InstanceNorm2d(cout))
    if act:
        layers.append(nn.ReLU(True))
    return nn.Sequential(*layers)


class AdaIN(nn.Module):
    """Adaptive instance norm (Huang & Belongie 2017): IN(x)·γ + β with γ, β set per sample."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.gamma: torch.Tensor | None = None
        self.beta: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.gamma is not None and self.beta is not None, "set AdaIN params first"
        return F.instance_norm(x) * self.gamma[..., None, None] + self.beta[..., None, None]


class ResBlock(nn.Module):
    """Two 3×3 convs with instance norm (or AdaIN) and a skip connection."""

    def __init__(self, dim: int, adain: bool = False) -> None:
        super().__init__()
        self.norm1 = AdaIN(dim) if adain else nn.InstanceNorm2d(dim)
        self.norm2 = AdaIN(dim) if adain else nn.InstanceNorm2d(dim)
        self.conv1 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3))
        self.conv2 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        return x + self.norm2(self.conv2(h))


class Translator(nn.Module):
    """FUNIT's generator: E_c, E_s and the AdaIN decoder G(c, s)."""

    def __init__(self, c: BalaGANConfig) -> None:
        super().__init__()
        content = [_conv_block(3, c.nf, 7, 1, norm=True)]
        dim = c.nf
        for _ in range(c.n_downs_content):
            content.append(_conv_block(dim, dim * 2, 4, 2, norm=True))
            dim *= 2
        content += [ResBlock(dim) for _ in range(c.n_res_blocks)]
        self.content_encoder = nn.Sequential(*content)
        style, sdim = [_conv_block(3, c.nf, 7, 1, norm=False)], c.nf
        for i in range(c.n_downs_class):
            nxt = sdim * 2 if i < 2 else sdim  # FUNIT doubles twice, then keeps the width
            style.append(_conv_block(sdim, nxt, 4, 2, norm=False))
            sdim = nxt
        style += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(sdim, c.latent_dim, 1)]
        self.class_encoder = nn.Sequential(*style)
        self.blocks = nn.ModuleList(ResBlock(dim, adain=True) for _ in range(c.n_res_blocks))
        up: list[nn.Module] = []
        for _ in range(c.n_downs_content):
            up += [nn.Upsample(scale_factor=2), _conv_block(dim, dim // 2, 5, 1, norm=True)]
            dim //= 2
        up += [_conv_block(dim, 3, 7, 1, norm=False, act=False), nn.Tanh()]
        self.upsample = nn.Sequential(*up)
        self.adains = [m for m in self.blocks.modules() if isinstance(m, AdaIN)]
        n_params = sum(2 * m.dim for m in self.adains)
        self.mlp = nn.Sequential(
            nn.Linear(c.latent_dim, c.nf_mlp), nn.ReLU(True),
            nn.Linear(c.nf_mlp, c.nf_mlp), nn.ReLU(True),
            nn.Linear(c.nf_mlp, n_params),
        )  # fmt: skip

    def encode_class(self, x: torch.Tensor) -> torch.Tensor:
        """Per-image class codes ``(N, latent_dim)``."""
        return self.class_encoder(x).flatten(1)

    def decode(self, content: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        params = self.mlp(code)
        i = 0
        for m in self.adains:  # the MLP output is split into (β, γ) per AdaIN layer
            m.beta, m.gamma = params[:, i : i + m.dim], params[:, i + m.dim : i + 2 * m.dim] + 1
            i += 2 * m.dim
        h = content
        for block in self.blocks:
            h = block(h)
        return self.upsample(h)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return self.decode(self.content_encoder(x), code)


class ActFirstResBlock(nn.Module):
    """Pre-activation residual block (LeakyReLU 0.2 → conv), 1×1 learned shortcut on width change."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.LeakyReLU(0.2), nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)
        )
        self.conv2 = nn.Sequential(
            nn.LeakyReLU(0.2), nn.ReflectionPad2d(1), nn.Conv2d(cout, cout, 3)
        )
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.conv2(self.conv1(x))


class MultiTaskDiscriminator(nn.Module):
    """FUNIT's patch discriminator with one output channel per class (multi-task, §3.2)."""

    def __init__(self, n_classes: int, nf: int = 64, n_res_blocks: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, nf, 7)]
        dim = nf
        for _ in range(n_res_blocks // 2 - 1):
            nxt = min(dim * 2, 1024)
            layers += [ActFirstResBlock(dim, dim), ActFirstResBlock(dim, nxt)]
            layers += [nn.ReflectionPad2d(1), nn.AvgPool2d(3, 2)]
            dim = nxt
        layers += [ActFirstResBlock(dim, dim), ActFirstResBlock(dim, dim)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(dim, n_classes, 1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (score map of each sample's own class ``(N, H, W)``, features ``(N, C, H, W)``)."""
        feat = self.features(x)
        out = self.head(feat)
        return out[torch.arange(x.size(0), device=x.device), labels], feat


def cluster_photos(images: list[torch.Tensor], k: int, seed: int = 0) -> np.ndarray:
    """k-means pseudo-domains from colour statistics and a 4×4 layout thumbnail of each photo."""
    from sklearn.cluster import KMeans  # seconds to import: only BalaGAN's clustering needs it

    feats = []
    for x in images:
        x = (x + 1) / 2
        stats = torch.cat([x.mean((1, 2)), x.std((1, 2))])
        thumb = F.adaptive_avg_pool2d(x[None], 4).flatten()
        feats.append(torch.cat([stats * 4, thumb]).numpy())  # ×4: colour stats weigh like layout
    k = min(k, len(images))
    return KMeans(k, n_init=10, random_state=seed).fit_predict(np.stack(feats))


@register
class BalaGAN(Baseline):
    """Photos clustered into k pseudo-classes + the mural class; stylize = translate to murals."""

    name = "balagan"
    config_class = BalaGANConfig

    def __init__(self, config: BalaGANConfig | None = None, device: str = "cpu") -> None:
        super().__init__(config, device)
        c = self.config
        with fixed_seed(0):
            self.G = Translator(c).to(self.device)
            self.D = MultiTaskDiscriminator(c.n_clusters + 1, c.nf, c.n_res_blocks_d).to(
                self.device
            )
        self.mural_code = torch.zeros(1, c.latent_dim, device=self.device)  # set by fit()

    @classmethod
    def tiny_config(cls, resolution: int = 64) -> BalaGANConfig:
        """Width 8, 4 discriminator blocks, batch 2."""
        return BalaGANConfig(
            resolution=resolution, nf=8, nf_mlp=32, latent_dim=16, n_res_blocks_d=4, batch_size=2
        )

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
        """Cluster the photos, then alternate D and G steps of FUNIT's objective.

        Args:
            content_dir: photos (the rich domain). style_dir: murals (the scarce class).
            steps (`int`): iterations (FUNIT: 100,000).
            out_dir, checkpoint_every, resume, seed: see :func:`svdinst.baselines.common.fit_loop`.
        """
        c = self.config
        seed_everything(seed)
        photos = ImageSampler(content_dir, c.resolution, seed=seed)
        murals = ImageSampler(style_dir, c.resolution, seed=seed + 1)
        photo_class = torch.as_tensor(cluster_photos(photos.images, c.n_clusters, seed))
        mural_label = c.n_clusters  # the last class; unused cluster ids just stay empty
        opt_g = torch.optim.Adam(
            self.G.parameters(), c.lr, (0.5, 0.999), weight_decay=c.weight_decay
        )
        opt_d = torch.optim.Adam(
            self.D.parameters(), c.lr, (0.5, 0.999), weight_decay=c.weight_decay
        )
        pick = torch.Generator().manual_seed(seed + 2)
        n = c.batch_size

        def draw(to_mural: bool) -> tuple[torch.Tensor, torch.Tensor]:
            if to_mural:
                return murals.sample(n), torch.full((n,), mural_label)
            x, idx = photos.sample_with_index(n)
            return x, photo_class[idx]

        def step(_: int) -> dict[str, float]:
            xa, la = draw(False)  # content: photos of some clusters
            xb, lb = draw(bool(torch.rand((), generator=pick) < c.mural_fraction))
            xa, la, xb, lb = (t.to(self.device) for t in (xa, la, xb, lb))
            # Discriminator: hinge on real class images (+ R1) and on translations.
            xb.requires_grad_(True)
            real, _ = self.D(xb, lb)
            (grad,) = torch.autograd.grad(real.sum(), xb, create_graph=True)
            r1 = grad.pow(2).flatten(1).sum(1).mean()
            with torch.no_grad():
                xt = self.G.decode(self.G.content_encoder(xa), self.G.encode_class(xb))
            fake, _ = self.D(xt, lb)
            d_loss = F.relu(1 - real).mean() + F.relu(1 + fake).mean() + c.gp_w * r1
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            xb = xb.detach()
            # Generator: translate a→class(b), reconstruct a; hinge + recon + feature matching.
            content = self.G.content_encoder(xa)
            xt = self.G.decode(content, self.G.encode_class(xb))
            xr = self.G.decode(content, self.G.encode_class(xa))
            t_out, t_feat = self.D(xt, lb)
            r_out, r_feat = self.D(xr, la)
            with torch.no_grad():
                a_feat, b_feat = self.D(xa, la)[1], self.D(xb, lb)[1]
            adv = -0.5 * (t_out.mean() + r_out.mean())
            rec = F.l1_loss(xr, xa)
            fm = F.l1_loss(t_feat.mean((2, 3)), b_feat.mean((2, 3))) + F.l1_loss(
                r_feat.mean((2, 3)), a_feat.mean((2, 3))
            )
            g_loss = c.gan_w * adv + c.r_w * rec + c.fm_w * fm
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            return {"loss": d_loss.item() + g_loss.item(), "d": d_loss.item(), "r1": r1.item(),
                    "g_adv": adv.item(), "rec": rec.item(), "fm": fm.item()}  # fmt: skip

        objects = {"G": self.G, "D": self.D, "opt_g": opt_g, "opt_d": opt_d, "photos": photos,
                   "murals": murals, "pick": GeneratorState(pick)}  # fmt: skip
        self.G.train()
        losses = fit_loop(step, steps, objects=objects, out_dir=out_dir,
                          checkpoint_every=checkpoint_every, resume=resume, desc=self.name)  # fmt: skip
        self.G.eval()
        with torch.no_grad():  # the mural class code: mean code of all mural images (FUNIT §3)
            full = torch.stack([center_square(m, c.resolution) for m in murals.images])
            self.mural_code = self.G.encode_class(full.to(self.device)).mean(0, keepdim=True)
        return losses

    def stylize(
        self, images: list[Image.Image], style: list[Image.Image] | None = None
    ) -> list[Image.Image]:
        """Decode each photo's content code with the mural class code; ``style`` is not used."""
        self.G.eval()
        multiple = 2**self.config.n_downs_content
        return translate_each(images, lambda x, _: self.G(x, self.mural_code), self.device,
                              multiple=multiple)  # fmt: skip

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The translator and the mural class code (the discriminator lives in checkpoints)."""
        return {
            **{f"G.{k}": v for k, v in self.G.state_dict().items()},
            "mural_code": self.mural_code,
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.G.load_state_dict({k[2:]: v for k, v in state.items() if k.startswith("G.")})
        self.mural_code = state["mural_code"].to(self.device)
