"""The StyTr² network (Deng et al., CVPR 2022): patch embedding, CAPE, content/style transformer
encoders, transformer decoder, CNN decoder. Losses and training are in :mod:`.stytr2`.

Layers are DETR-style post-norm blocks (``x = LN(x + Dropout(Attn(x)))``,
``x = LN(x + Dropout(FFN(x)))``) like the authors' ``models/transformer.py``. One detail of that
code is kept on purpose: in each decoder layer *both* attention blocks take their keys and values
from the style sequence (the first is named self-attention there but attends to the style
memory); the content queries carry the CAPE positions throughout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from svdinst.baselines.vgg import vgg_mirror_decoder


class CAPE(nn.Module):
    """Content-aware positional encoding : positions from the content itself.

    ``P = Upsample_bilinear(Conv1×1(AvgPool_{n×n}(E)))`` for the content embedding ``E``, so a
    position code follows the image's semantics and its grid stretches with the image size.
    """

    def __init__(self, d_model: int, pool: int = 18) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.proj = nn.Conv2d(d_model, d_model, 1)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        pos = self.proj(self.pool(embedding))
        return F.interpolate(pos, size=embedding.shape[-2:], mode="bilinear", align_corners=False)


class FeedForward(nn.Sequential):
    """``Linear → ReLU → Dropout → Linear`` (the FFN of every layer)."""

    def __init__(self, d_model: int, hidden: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(d_model, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, d_model)
        )


class EncoderLayer(nn.Module):
    """Post-norm self-attention layer; ``pos`` (CAPE, or none for style) is added to q and k."""

    def __init__(self, d_model: int, n_heads: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.ffn = FeedForward(d_model, hidden, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        qk = x if pos is None else x + pos
        x = self.norm1(x + self.drop1(self.attn(qk, qk, x, need_weights=False)[0]))
        return self.norm2(x + self.drop2(self.ffn(x)))


class DecoderLayer(nn.Module):
    """Content queries (+CAPE) attend twice to the style sequence, then an FFN (post-norm)."""

    def __init__(self, d_model: int, n_heads: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.attn1 = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.attn2 = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.ffn = FeedForward(d_model, hidden, dropout)
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(3))
        self.drops = nn.ModuleList(nn.Dropout(dropout) for _ in range(3))

    def forward(self, q: torch.Tensor, style: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        x = self.norms[0](
            q + self.drops[0](self.attn1(q + pos, style, style, need_weights=False)[0])
        )
        x = self.norms[1](
            x + self.drops[1](self.attn2(x + pos, style, style, need_weights=False)[0])
        )
        return self.norms[2](x + self.drops[2](self.ffn(x)))


class StyTr2Net(nn.Module):
    """StyTr²'s generator: ``I_cs = net(I_c, I_s)`` for images in [0, 1] (sizes multiple of 8).

    Args:
        d_model (`int`, defaults to 512): token width (also the CNN decoder's input channels).
        n_heads (`int`, defaults to 8): attention heads.
        n_encoder_layers (`int`, defaults to 3): layers of each encoder.
        n_decoder_layers (`int`, defaults to 3): transformer decoder layers.
        dim_feedforward (`int`, defaults to 2048): FFN hidden width.
        dropout (`float`, defaults to 0.1): dropout in attention and FFN.
        patch_size (`int`, defaults to 8): patch side; must equal the CNN decoder's ×8 upsampling.
        cape_pool (`int`, defaults to 18): CAPE's pooled grid.
        decoder_widths (`tuple`, defaults to `(256, 128, 64)`): CNN decoder widths.
    """

    def __init__(
        self,
        d_model: int = 512,
        n_heads: int = 8,
        n_encoder_layers: int = 3,
        n_decoder_layers: int = 3,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        patch_size: int = 8,
        cape_pool: int = 18,
        decoder_widths: tuple[int, int, int] = (256, 128, 64),
    ) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, d_model, patch_size, stride=patch_size)  # patch embedding
        self.cape = CAPE(d_model, cape_pool)

        def layers(kind: type[nn.Module], n: int) -> nn.ModuleList:
            return nn.ModuleList(kind(d_model, n_heads, dim_feedforward, dropout) for _ in range(n))

        self.encoder_c = layers(EncoderLayer, n_encoder_layers)
        self.encoder_s = layers(EncoderLayer, n_encoder_layers)
        self.decoder = layers(DecoderLayer, n_decoder_layers)
        self.decoder_norm = nn.LayerNorm(d_model)
        # The authors apply Xavier-uniform to every matrix of the transformer (not embed / CAPE).
        for part in (self.encoder_c, self.encoder_s, self.decoder):
            for p in part.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        self.cnn_decoder = vgg_mirror_decoder(d_model, decoder_widths)

    def transform(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Embedded content ``(N, D, h, w)`` + embedded style → decoded tokens ``(N, D, h, w)``."""
        n, d, h, w = content.shape
        pos = self.cape(content).flatten(2).transpose(1, 2)
        c = content.flatten(2).transpose(1, 2)
        s = style.flatten(2).transpose(1, 2)
        for layer in self.encoder_s:
            s = layer(s)  # style: no positional encoding
        for layer in self.encoder_c:
            c = layer(c, pos)
        for layer in self.decoder:
            c = layer(c, s, pos)
        return self.decoder_norm(c).transpose(1, 2).reshape(n, d, h, w)

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Stylize ``content`` with ``style`` (batches of equal size N; spatial sizes may differ)."""
        return self.cnn_decoder(self.transform(self.embed(content), self.embed(style)))
