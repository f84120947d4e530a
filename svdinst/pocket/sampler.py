"""The pocket pretraining data stream: a *batched* crop sampler that runs on the training device.

pocket-v1 cut, resized and edited each crop in its own loop iteration (a dozen small kernels and
Python round trips per crop): with 32 crops a step the GPU waited on the sampler, and the UNet
stage ran launch-bound at ~9 steps/s. Here every photo and every styled copy of it
(:mod:`svdinst.data.styles`, rendered once at start-up) lies in one *atlas* tensor on the device,
and a whole batch is one ``grid_sample`` call (an affine grid per crop: position, scale, flip),
supersampled and average-pooled against aliasing, followed by the appearance edits applied to
the whole batch and selected per crop with ``torch.where``. The random numbers of a batch are
drawn in a few calls from one seeded CPU generator, so the data are the same on every device
and after a resume, and nothing waits for the GPU.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from svdinst.data.default import MAX_SIDE
from svdinst.data.styles import apply_style
from svdinst.pocket.data import (
    APPEARANCES,
    POCKET_PHOTOS,
    PocketPhoto,
    all_captions,
    apply_appearance,
    caption,
    is_grayscale,
    load_pocket_photo,
    style_caption,
)

GAP = 2  # empty pixels between atlas blocks: bilinear taps at a crop's edge never reach a neighbour


class PocketCropSampler:
    """Random square crops at random scales, flips, appearance edits and styles, with captions.

    A crop comes from the photo itself or, with probability ``style_prob``, from one of its
    styled copies (caption ``"<subject> in <style>"``); an unstyled crop gets an appearance
    edit with probability ``appearance_prob`` (caption ``"a blurry photo of …"``).

    Args:
        resolution (`int`): output side in pixels.
        seed (`int`): generator seed (also the styles' texture seed).
        device (`str` or `torch.device`, defaults to ``"cpu"``): where the atlas and crops live.
        min_crop (`float`, defaults to 0.3): smallest crop side as a fraction of the photo's
            shorter side; sides are log-uniform up to the whole shorter side.
        appearance_prob (`float`, defaults to 0.5): chance that an unstyled crop gets an edit.
        caption_dropout (`float`, defaults to 0.1): chance that the caption is ``""``.
        photos (`tuple[PocketPhoto]`, defaults to :data:`POCKET_PHOTOS`): the photos.
        styles (`tuple[str]`, defaults to ``()``): names of :data:`svdinst.data.styles.STYLES`.
        style_prob (`float`, defaults to 0.0): chance that a crop comes from a styled copy.
        max_side (`int`, defaults to 512): photos are downscaled to this longest side first.
        supersample (`int`, defaults to 2): grid points per output pixel and axis (box filter).
    """

    def __init__(
        self,
        resolution: int,
        seed: int,
        device: str | torch.device = "cpu",
        min_crop: float = 0.3,
        appearance_prob: float = 0.5,
        caption_dropout: float = 0.1,
        photos: tuple[PocketPhoto, ...] = POCKET_PHOTOS,
        styles: tuple[str, ...] = (),
        style_prob: float = 0.0,
        max_side: int = MAX_SIDE,
        supersample: int = 2,
    ) -> None:
        if styles and not 0 < style_prob <= 1:
            raise ValueError(
                f"style_prob must be in (0, 1] when styles are given, got {style_prob}."
            )
        self.resolution, self.device, self.min_crop = resolution, torch.device(device), min_crop
        self.appearance_prob, self.caption_dropout = appearance_prob, caption_dropout
        self.photos, self.styles = photos, tuple(styles)
        self.style_prob = style_prob if styles else 0.0
        self.supersample = max(1, supersample)
        images = [load_pocket_photo(p, max_side) for p in photos]
        self.grays = [is_grayscale(im) for im in images]
        variants = [[im] for im in images]
        if self.styles:
            jobs = [(i, s) for s in self.styles for i in range(len(images))]
            for i, style in tqdm(jobs, desc="pocket styles", leave=False):
                variants[i].append(apply_style(images[i], style, seed))
        self._build_atlas(variants)
        self.captions = all_captions(photos, self.grays, self.styles)
        self._caption_table = self._captions_by_choice()
        self.generator = torch.Generator().manual_seed(seed)

    def _build_atlas(self, variants: list[list]) -> None:
        """One (3, H, W) tensor holding every variant side by side; boxes in pixel units."""
        sizes = [(im.height, im.width) for row in variants for im in row]
        height = max(h for h, _ in sizes)
        width = sum(w + GAP for _, w in sizes)
        atlas = np.zeros((height, width, 3), np.uint8)
        boxes, x = [], 0  # per variant: left, height, width
        for h, w in sizes:
            boxes.append((x, h, w))
            x += w + GAP
        for (left, h, w), im in zip(boxes, (im for row in variants for im in row)):
            atlas[:h, left : left + w] = np.asarray(im.convert("RGB"))
        # float32 even on a GPU: the atlas is ~40k px wide, and a half-precision grid coordinate
        # there would be off by ~20 px (fp16 has 11 significant bits).
        self.atlas = torch.from_numpy(atlas).to(self.device).permute(2, 0, 1)[None].float() / 255
        n_var = 1 + len(self.styles)
        self.boxes = torch.tensor(boxes, dtype=torch.float64).view(len(variants), n_var, 3)
        # The photos themselves (variant 0) as views: what the data is made of, for checks.
        self.pixels = [
            self.atlas[0, :, : int(b[1]), int(b[0]) : int(b[0] + b[2])].float()
            for b in self.boxes[:, 0]
        ]

    def _captions_by_choice(self) -> torch.Tensor:
        """Caption index per (photo, choice): choice 0 plain, 1..A appearances, A+1.. styles."""
        index = {c: i for i, c in enumerate(self.captions)}
        rows = []
        for photo, gray in zip(self.photos, self.grays):
            row = [caption(photo.subject, a, gray) for a in (None, *APPEARANCES)]
            row += [style_caption(photo.subject, s) for s in self.styles]
            rows.append([index[c] for c in row])
        return torch.tensor(rows)

    def state(self) -> torch.Tensor:
        """The generator state (for checkpoints)."""
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        """Restore :meth:`state`."""
        self.generator.set_state(state)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of crops in [-1, 1] (``batch_size, 3, R, R``, float32 on the device) and the
        index of each crop's caption in :attr:`captions` (a CPU tensor)."""
        g, b, r = self.generator, batch_size, self.resolution
        photo = torch.randint(len(self.photos), (b,), generator=g)
        u = torch.rand(b, 7, generator=g, dtype=torch.float64)
        n_app, n_sty = len(APPEARANCES), len(self.styles)
        styled = u[:, 0] < self.style_prob
        style = torch.randint(max(1, n_sty), (b,), generator=g)
        edited = ~styled & (u[:, 1] < self.appearance_prob)
        appearance = torch.randint(n_app, (b,), generator=g)
        variant = torch.where(styled, 1 + style, torch.zeros_like(style))
        left0, h, w = self.boxes[photo, variant].unbind(-1)
        short = torch.minimum(h, w)
        lo = torch.clamp(self.min_crop * short, min=8.0).minimum(short)
        side = torch.exp(torch.log(lo) + u[:, 2] * torch.log(short / lo)).round()
        top = (u[:, 3] * (h - side + 1)).floor()
        left = left0 + (u[:, 4] * (w - side + 1)).floor()
        flip = u[:, 5] < 0.5
        choice = torch.where(styled, 1 + n_app + style, torch.where(edited, 1 + appearance, 0))
        ids = self._caption_table[photo, choice]
        ids = torch.where(u[:, 6] < self.caption_dropout, torch.zeros_like(ids), ids)  # "" is 0
        crops = self._crop(top, left, side, flip)
        app = torch.where(edited, appearance, torch.full_like(appearance, -1))
        # Only "noisy" crops need noise: drawing it for those alone keeps the CPU generator's
        # work per step small (a full batch of 128 px noise costs ~20 ms, the step ~100 ms).
        noisy = (app == APPEARANCES.index("noisy")).nonzero().flatten()
        noise = torch.zeros(b, 3, r, r, device=self.device)
        if len(noisy):
            noise[noisy.to(self.device)] = torch.randn(len(noisy), 3, r, r, generator=g).to(
                self.device
            )
        crops = self._edit(crops, app.to(self.device), noise)
        return crops * 2 - 1, ids

    def _crop(self, top, left, side, flip) -> torch.Tensor:
        """Every crop in one ``grid_sample`` of the atlas, box-filtered from ``supersample``²."""
        b, r, ss = len(top), self.resolution, self.supersample
        n = r * ss
        t = (torch.arange(n, dtype=torch.float64) + 0.5) / n  # sample centres in [0, 1]
        tx = torch.where(flip[:, None], 1 - t[None], t[None])
        px = left[:, None] + tx * side[:, None]  # atlas pixel coordinates
        py = top[:, None] + t[None] * side[:, None]
        _, _, height, width = self.atlas.shape
        # Only the (b, n) coordinate rows are made here; the (b, n, n) grid is expanded on the
        # device (at 128 px, batch 128 and 3× supersampling it is 38 M numbers per step).
        gx = (2 * px / width - 1).float().to(self.device)
        gy = (2 * py / height - 1).float().to(self.device)
        grid = torch.stack(
            [gx.view(b, 1, n).expand(b, n, n), gy.view(b, n, 1).expand(b, n, n)], -1
        ).reshape(1, b * n, n, 2)
        out = F.grid_sample(self.atlas, grid, mode="bilinear", align_corners=False)
        out = out.view(3, b, n, n).transpose(0, 1).float()
        if ss > 1:
            out = F.avg_pool2d(out, ss)
        return out.clamp(0, 1)

    def _edit(self, x: torch.Tensor, appearance: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Each crop's appearance edit (``-1``: none), batched: every edit, then a per-crop pick."""
        out = x
        for k, name in enumerate(APPEARANCES):
            pick = (appearance == k).view(-1, 1, 1, 1)
            out = torch.where(pick, apply_appearance(x, name, noise), out)
        return out
