"""InST's image→token module and the placeholder-token plumbing (Zhang et al., CVPR 2023).

Inversion-based Style Transfer (InST) learns the text embedding of a placeholder token ``*``
not as a free vector (textual inversion) but as a function of the style image: the frozen CLIP
vision tower gives ``image_embeds`` (768-d for CLIP-L), and two cross-attention layers plus a
linear layer map it to a token embedding (InST §3.2, Fig. 3; official code
``ldm/modules/embedding_manager.py``: ``attn1`` self-attention, ``attn2`` cross-attention whose
context is the image embedding, then ``Dropout → Linear``; 8 heads × 64, dropout 0.05; no
residuals). At SD size that is 3,737,856 parameters — the report's "3.7 M trainable".

Three facts a reader should know:

* The module's input is CLIP's **L2-normalised** image embedding, as in InST's code
  (``ldm/modules/encoders/modules.py``: ``CLIPModel(...).image_embeds``, which CLIPModel
  normalises). ``CLIPVisionModelWithProjection.image_embeds`` is the same vector *before* that
  normalisation (‖x‖ ≈ 20 for CLIP-L). Fed raw, a freshly initialised SD-size module gives a
  token of norm ≈ 3.9 instead of ≈ 0.7 (a word's embedding: ≈ 0.4), and each Adam step moves it
  ~5× further (measured on the module alone, 5 seeds, lr 1e-3).
  :func:`encode_images` normalises (tested for any image).

* With ``image_tokens="pooled"`` (InST) the attentions see a *single* key, so the softmax is 1
  and ``attn2(x1, x) = to_out(to_v(x))``: the whole module is the affine map
  ``Linear(to_out(to_v(x)))`` in disguise, and ``attn1`` — which only forms attn2's query — has
  no effect at all on the output (its parameters get zero gradient; tested).
  ``image_tokens="patches"`` lets the second attention look at every patch token of the vision
  tower (projected into the same space by CLIP's own ``post_layernorm`` + ``visual_projection``),
  so it can actually choose *where* in the style image to look.
* InST's official code casts a [-1, 1] tensor to ``uint8`` before CLIP's preprocessing, which
  sends every negative value to 0 and most pixels to black. We preprocess PIL images with the
  model's own ``CLIPImageProcessor`` instead (tested: the embedding depends on the image).

The placeholder token (default ``<mural>``) is added to the tokenizer, the text embedding matrix
grows by one row, and a forward hook on the token-embedding layer writes the module's output into
the positions of that token — differentiably, so gradients reach the module, while every other
row of the matrix stays untouched. The run's embedding file (``RunFolder.LEARNED_EMBEDS``) uses
diffusers' textual-inversion format ``{token: tensor(1, D)}``, so stock ``pipe.load_textual_inversion(path)`` reads it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from svdinst.errors import ModelNotFoundError, ShiftFileError, SvdinstError
from svdinst.formats.atomic import atomic_path
from svdinst.formats.checkpoint import check_finite

DEFAULT_PLACEHOLDER = "<mural>"
IMAGE_TOKENS = ("pooled", "patches")


class PlaceholderTokenError(SvdinstError, ValueError):
    """A bad placeholder or initializer word (the CLI prints it as one line)."""


@dataclass
class ImageToTokenConfig:
    """Shape of the image→token module; the defaults are InST's."""

    image_dim: int = 768  # CLIP-L's projection_dim: the size of `image_embeds`
    token_dim: int = 768  # the text encoder's hidden size: the size of one token embedding
    heads: int = 8  # InST: 8 heads ...
    head_dim: int = 64  # ... of 64 → an inner width of 512 (768→512→768)
    dropout: float = 0.05  # InST's value; regularises a module that sees one image
    image_tokens: str = "pooled"  # "pooled" = InST (one token); "patches" attends over patches

    def __post_init__(self) -> None:
        if self.image_tokens not in IMAGE_TOKENS:
            raise ValueError(
                f"image_tokens must be one of {IMAGE_TOKENS}, got {self.image_tokens!r}."
            )
        if min(self.image_dim, self.token_dim, self.heads, self.head_dim) < 1:
            raise ValueError(f"ImageToTokenConfig sizes must be positive, got {self}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")

    @classmethod
    def for_models(
        cls, image_encoder: Any, text_encoder: Any, **overrides: Any
    ) -> ImageToTokenConfig:
        """Read ``image_dim``/``token_dim`` from a CLIP vision tower and a CLIP text encoder."""
        return cls(
            image_dim=image_encoder.config.projection_dim,
            token_dim=text_encoder.config.hidden_size,
            **overrides,
        )


class CrossAttention(nn.Module):
    """Multi-head attention as in LDM/InST: bias-free q/k/v, ``to_out`` = Linear + Dropout.

    Args:
        query_dim (`int`): width of the query tokens (and of the output).
        context_dim (`int`): width of the context tokens (keys/values).
        heads (`int`), head_dim (`int`): inner width is ``heads * head_dim``.
        dropout (`float`): dropout after the output projection.
    """

    def __init__(
        self, query_dim: int, context_dim: int, heads: int, head_dim: int, dropout: float
    ) -> None:
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """softmax(QKᵀ/√d)V per head (Vaswani et al., Eq. 1); ``context=None`` is self-attention."""
        context = x if context is None else context
        b = x.shape[0]

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, t.shape[1], self.heads, -1).transpose(1, 2)

        q, k, v = split(self.to_q(x)), split(self.to_k(context)), split(self.to_v(context))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, x.shape[1], -1))


class ImageToToken(nn.Module):
    """InST's mapping from CLIP image features to one token embedding (InST Fig. 3).

    ``forward(image_features)`` takes ``(B, N, image_dim)``: token 0 is ``image_embeds`` (the
    query); with ``image_tokens="pooled"`` ``N == 1``, with ``"patches"`` the remaining tokens are
    the projected patch tokens (the context of the second attention). Returns ``(B, token_dim)``.
    """

    def __init__(self, config: ImageToTokenConfig | None = None) -> None:
        super().__init__()
        self.config = config or ImageToTokenConfig()
        c = self.config
        self.attn1 = CrossAttention(c.image_dim, c.image_dim, c.heads, c.head_dim, c.dropout)
        self.attn2 = CrossAttention(c.image_dim, c.image_dim, c.heads, c.head_dim, c.dropout)
        self.net = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(c.image_dim, c.token_dim))

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        if image_features.dim() != 3 or image_features.shape[-1] != self.config.image_dim:
            raise ValueError(
                f"ImageToToken expects (batch, tokens, {self.config.image_dim}) image features, "
                f"got {tuple(image_features.shape)}."
            )
        query = image_features[:, :1]
        x1 = self.attn1(query)  # self-attention over the query token(s)
        x2 = self.attn2(x1, image_features)  # cross-attention into the image tokens
        return self.net(x2)[:, 0]


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of ``module`` (3,737,856 for InST at SD size)."""
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def encode_images(
    image_encoder: Any,
    feature_extractor: Any,
    images: list,
    image_tokens: str = "pooled",
) -> torch.Tensor:
    """CLIP image features of PIL images, preprocessed by the model's own image processor.

    Args:
        image_encoder (`CLIPVisionModelWithProjection`): the frozen vision tower.
        feature_extractor (`CLIPImageProcessor`): resizes, centre-crops and normalises (never the
            uint8 cast of InST's official code).
        images (`list[PIL.Image.Image]`): RGB images.
        image_tokens (`str`, defaults to ``"pooled"``): ``"pooled"`` → ``(B, 1, P)`` image_embeds;
            ``"patches"`` → ``(B, 1 + n_patches, P)``: every token through ``post_layernorm`` and
            ``visual_projection`` (token 0 is exactly ``image_embeds``).

    Returns:
        `torch.Tensor`: float32 features on the encoder's device, each token of unit L2 norm
        (InST feeds CLIPModel's normalised ``image_embeds``).
    """
    if image_tokens not in IMAGE_TOKENS:
        raise ValueError(f"image_tokens must be one of {IMAGE_TOKENS}, got {image_tokens!r}.")
    if image_encoder is None or feature_extractor is None:
        raise ModelNotFoundError(
            "InST needs the CLIP vision tower and its image processor; load them with "
            "load_components(..., parts=[..., 'image_encoder', 'feature_extractor'])."
        )
    param = next(image_encoder.parameters())
    pixels = feature_extractor(images=[im.convert("RGB") for im in images], return_tensors="pt")
    pixels = pixels.pixel_values.to(param.device, param.dtype)
    out = image_encoder(pixel_values=pixels)
    if image_tokens == "pooled":
        features = out.image_embeds[:, None, :]
    else:
        tokens = image_encoder.vision_model.post_layernorm(out.last_hidden_state)
        features = image_encoder.visual_projection(tokens)
    # CLIPModel's image_embeds are L2-normalised (InST's input); the vision tower's are not.
    return F.normalize(features.float(), dim=-1)


# --------------------------------------------------------------------------- placeholder token


def add_placeholder_token(
    tokenizer: Any,
    text_encoder: Any,
    token: str = DEFAULT_PLACEHOLDER,
    initializer: str | torch.Tensor | None = "painting",
) -> int:
    """Add ``token`` to the tokenizer, grow the embedding matrix by one row, initialise it.

    Args:
        tokenizer (`CLIPTokenizer`): gains ``token`` as a new, unsplittable token.
        text_encoder (`CLIPTextModel`): its input embedding gets one more row.
        token (`str`, defaults to ``"<mural>"``): must not already be in the vocabulary.
        initializer (`str`, `torch.Tensor` or `None`, defaults to ``"painting"``): a word that is
            a single token (its row is copied), a vector, or ``None`` (leave the new row as is).

    Returns:
        `int`: the new token's id.
    """
    if not token or any(ch.isspace() for ch in token):
        raise PlaceholderTokenError(
            f"Placeholder token (--placeholder-token) must be one word without spaces, got {token!r}."
        )
    if token in tokenizer.get_vocab():
        raise PlaceholderTokenError(
            f"Placeholder token (--placeholder-token) {token!r} is already in the tokenizer's "
            "vocabulary; choose another (e.g. '<mural-2>') or load fresh components."
        )
    tokenizer.add_tokens(token)
    token_id = tokenizer.convert_tokens_to_ids(token)
    # mean_resizing=False: the new row is set below, and sampling it would consume global RNG.
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    weight = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        if isinstance(initializer, str):
            ids = tokenizer.encode(initializer, add_special_tokens=False)
            if len(ids) != 1:
                raise PlaceholderTokenError(
                    f"Initializer word (--initializer-token) {initializer!r} is {len(ids)} tokens; "
                    "pick one that is a single token (e.g. 'painting', 'mural', 'art')."
                )
            weight[token_id] = weight[ids[0]]
        elif initializer is not None:
            weight[token_id] = initializer.to(weight.device, weight.dtype)
    return token_id


class PlaceholderInjector:
    """Writes a (differentiable) vector into every position of the placeholder token.

    A forward hook on the text encoder's token-embedding layer replaces the looked-up rows of
    ``token_id`` with :attr:`value` — shape ``(D,)`` for every sample or ``(B, D)`` per sample —
    so gradients flow back to whatever produced ``value`` (the image→token module). With
    ``value = None`` the hook passes the embedding through. Use as a context manager or call
    :meth:`remove`.

    Args:
        text_encoder (`CLIPTextModel`): the encoder whose input embedding is hooked.
        token_id (`int`): id of the placeholder token.
    """

    def __init__(self, text_encoder: Any, token_id: int) -> None:
        self.token_id = token_id
        self.value: torch.Tensor | None = None
        self.embedding = text_encoder.get_input_embeddings()
        self._handle = self.embedding.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        if self.value is None:
            return output
        value = self.value.to(output.dtype)
        value = value.expand(output.shape[0], -1) if value.dim() == 1 else value
        mask = (inputs[0] == self.token_id).unsqueeze(-1)
        return torch.where(mask, value[:, None, :], output)

    @torch.no_grad()
    def write_row(self, vector: torch.Tensor) -> None:
        """Store ``vector`` in the placeholder's row of the embedding matrix (no gradient)."""
        self.embedding.weight[self.token_id] = vector.to(self.embedding.weight.dtype)

    def remove(self) -> None:
        self._handle.remove()

    def __enter__(self) -> PlaceholderInjector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


@torch.no_grad()
def nearest_tokens(
    tokenizer: Any, text_encoder: Any, vector: torch.Tensor, k: int = 10
) -> list[tuple[str, float]]:
    """The ``k`` vocabulary tokens whose embeddings are most cosine-similar to ``vector``.

    Added tokens (ids beyond the base vocabulary) are skipped, so the placeholder never finds itself.
    """
    weight = text_encoder.get_input_embeddings().weight.float()
    base = tokenizer.vocab_size
    sims = F.cosine_similarity(weight[:base], vector.float().to(weight.device)[None], dim=-1)
    top = sims.topk(k)
    return [
        (tokenizer.convert_ids_to_tokens(int(i)).replace("</w>", ""), float(s))
        for s, i in zip(top.values, top.indices)
    ]


# --------------------------------------------------------------------------- files


def save_learned_embeds(path: str | os.PathLike, token: str, vector: torch.Tensor) -> Path:
    """Write ``{token: tensor(1, D)}`` — diffusers' textual-inversion file format."""
    path = Path(path)
    tensors = {token: vector.detach().reshape(1, -1).float().cpu().contiguous()}
    check_finite(tensors, path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
    return path


def load_learned_embeds(path: str | os.PathLike, tokenizer: Any, text_encoder: Any) -> str:
    """Add the token of a :func:`save_learned_embeds` file to loaded components.

    If the token already exists (components reused across runs), its row is overwritten.

    Returns:
        `str`: the placeholder token.
    """
    path = Path(path)
    try:
        state = load_file(str(path))
    except Exception as err:
        raise ShiftFileError(
            f"Could not read '{path}' as a safetensors embedding file ({err}); re-run training."
        ) from err
    if len(state) != 1:
        raise ShiftFileError(
            f"'{path}' holds {len(state)} tensors; a textual-inversion file holds exactly one."
        )
    token, vector = next(iter(state.items()))
    width = text_encoder.get_input_embeddings().weight.shape[1]
    if vector.numel() != width:
        raise ShiftFileError(
            f"'{path}' holds a {vector.numel()}-d embedding but the text encoder's tokens are "
            f"{width}-d: the run was trained on another base model; pass that model."
        )
    if token in tokenizer.get_vocab():
        token_id = tokenizer.convert_tokens_to_ids(token)
        with torch.no_grad():
            weight = text_encoder.get_input_embeddings().weight
            weight[token_id] = vector.reshape(-1).to(weight.device, weight.dtype)
    else:
        add_placeholder_token(tokenizer, text_encoder, token, initializer=vector.reshape(-1))
    return token


def save_image_to_token(path: str | os.PathLike, module: ImageToToken) -> Path:
    """Write the module's weights with its config in the safetensors metadata."""
    path = Path(path)
    state = {k: v.detach().float().cpu().contiguous() for k, v in module.state_dict().items()}
    check_finite(state, path)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"config": json.dumps(asdict(module.config))})
    return path


def load_image_to_token(path: str | os.PathLike) -> ImageToToken:
    """Rebuild an :class:`ImageToToken` from :func:`save_image_to_token`'s file (eval mode)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        config = ImageToTokenConfig(**json.loads(meta["config"]))
        module = ImageToToken(config)
        module.load_state_dict(load_file(str(path)))
    except Exception as err:  # safetensors, JSON and shape errors all mean "not our file"
        raise ShiftFileError(
            f"'{path}' is not an image_to_token file written by svdinst ({err}); re-run training."
        ) from err
    return module.eval()
