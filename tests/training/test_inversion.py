"""InST image→token module, placeholder token handling and the embedding files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from svdinst.training.inversion import (
    CrossAttention,
    ImageToToken,
    ImageToTokenConfig,
    PlaceholderInjector,
    add_placeholder_token,
    count_parameters,
    encode_images,
    load_image_to_token,
    load_learned_embeds,
    nearest_tokens,
    save_image_to_token,
    save_learned_embeds,
)


@pytest.fixture(scope="module")
def comps(tiny_model_dir):
    from svdinst.models.loading import load_components

    return load_components(
        tiny_model_dir, ["text_encoder", "tokenizer", "image_encoder", "feature_extractor"]
    )


def _image(seed: int, size=(80, 96)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))


def test_parameter_count_at_sd_size_is_insts():
    module = ImageToToken(ImageToTokenConfig())  # 768 → 8×64 → 768, Linear(768, 768)
    # attn: q,k,v 768×512 (no bias) + out 512×768 + 768, twice; Linear 768×768 + 768.
    assert count_parameters(module) == 2 * (4 * 768 * 512 + 768) + 768 * 768 + 768 == 3_737_856


def test_tiny_dims_follow_the_models(comps):
    cfg = ImageToTokenConfig.for_models(comps.image_encoder, comps.text_encoder)
    assert (cfg.image_dim, cfg.token_dim) == (64, 64)
    out = ImageToToken(cfg)(torch.randn(3, 1, 64))
    assert out.shape == (3, 64)


def test_cross_attention_matches_the_formula():
    torch.manual_seed(0)
    attn = CrossAttention(6, 5, heads=2, head_dim=3, dropout=0.0)
    x, ctx = torch.randn(2, 4, 6), torch.randn(2, 7, 5)
    q = attn.to_q(x).view(2, 4, 2, 3).transpose(1, 2)
    k = attn.to_k(ctx).view(2, 7, 2, 3).transpose(1, 2)
    v = attn.to_v(ctx).view(2, 7, 2, 3).transpose(1, 2)
    weights = torch.softmax(q @ k.transpose(-1, -2) / 3**0.5, dim=-1)
    expected = attn.to_out((weights @ v).transpose(1, 2).reshape(2, 4, 6))
    torch.testing.assert_close(attn(x, ctx), expected)


def test_pooled_module_is_an_affine_map_and_patches_are_not():
    torch.manual_seed(0)
    module = ImageToToken(ImageToTokenConfig(image_dim=16, token_dim=12, heads=2, head_dim=4))
    module.eval()
    x = torch.randn(5, 1, 16)
    # One key: softmax = 1, so attn2 = to_out(to_v(context)) with context = x itself — the
    # module is affine in x and attn1 (which only forms attn2's query) drops out entirely.
    a2 = module.attn2
    expected = module.net(a2.to_out(a2.to_v(x)))[:, 0]
    torch.testing.assert_close(module(x), expected)
    module(x).pow(2).sum().backward()
    dead = max(float(p.grad.abs().max()) for p in module.attn1.parameters() if p.grad is not None)
    assert dead < 1e-6 < float(module.attn2.to_v.weight.grad.abs().max())
    # With patch tokens the output depends on the patches, not only on the pooled token.
    patches = torch.randn(5, 6, 16)
    one = module(torch.cat([x, patches], 1))
    two = module(torch.cat([x, patches.flip(1) * 2], 1))
    assert not torch.allclose(one, two)


def test_embedding_depends_on_the_image(comps):
    a, b = _image(0), _image(1)
    feats = encode_images(comps.image_encoder, comps.feature_extractor, [a, b, a])
    assert feats.shape == (3, 1, 64)
    torch.testing.assert_close(feats[0], feats[2])
    assert (feats[0] - feats[1]).abs().max() > 1e-3
    # The processor normalises (no uint8 cast of [-1, 1]): most pixels are not clipped to black.
    pixels = comps.feature_extractor(images=[a], return_tensors="pt").pixel_values
    assert (pixels <= pixels.min() + 1e-6).float().mean() < 0.05
    patches = encode_images(comps.image_encoder, comps.feature_extractor, [a], "patches")
    assert patches.shape[1] > 1
    torch.testing.assert_close(patches[:, :1], feats[:1], atol=1e-5, rtol=1e-5)


def test_placeholder_hook_is_differentiable_and_leaves_other_rows(tiny_model_dir):
    from svdinst.models.loading import load_components

    c = load_components(tiny_model_dir, ["text_encoder", "tokenizer"])
    before = c.text_encoder.get_input_embeddings().weight.detach().clone()
    plain_ids = c.tokenizer("a photo", return_tensors="pt").input_ids
    plain_out = c.text_encoder(plain_ids)[0]
    token_id = add_placeholder_token(c.tokenizer, c.text_encoder, "<mural>", "painting")
    weight = c.text_encoder.get_input_embeddings().weight
    assert weight.shape[0] == before.shape[0] + 1
    torch.testing.assert_close(weight[:-1], before, rtol=0, atol=0)
    painting = c.tokenizer.encode("painting", add_special_tokens=False)[0]
    torch.testing.assert_close(weight[token_id], before[painting], rtol=0, atol=0)

    ids = c.tokenizer("a <mural> photo", return_tensors="pt").input_ids
    assert (ids == token_id).sum() == 1
    value = torch.randn(64, requires_grad=True)
    with PlaceholderInjector(c.text_encoder, token_id) as injector:
        injector.value = value
        out = c.text_encoder(ids)[0]
        out.pow(2).sum().backward()  # (a plain sum is constant under the final LayerNorm)
        assert value.grad is not None and value.grad.abs().sum() > 0
        injector.value = None
        torch.testing.assert_close(c.text_encoder(plain_ids)[0], plain_out)  # other prompts same
        injector.write_row(value.detach())
    torch.testing.assert_close(weight[token_id], value.detach())
    torch.testing.assert_close(weight[:-1], before, rtol=0, atol=0)
    # After the hook is removed the row itself gives the same encoding as the injected value.
    torch.testing.assert_close(c.text_encoder(ids)[0], out.detach())
    with pytest.raises(ValueError, match="already in the tokenizer"):
        add_placeholder_token(c.tokenizer, c.text_encoder, "<mural>")
    with pytest.raises(ValueError, match="single token"):
        add_placeholder_token(c.tokenizer, c.text_encoder, "<other>", "ukiyoeprintmaking")


def test_embedding_files_round_trip(tmp_path, tiny_model_dir):
    from svdinst.errors import ShiftFileError
    from svdinst.models.loading import load_components

    module = ImageToToken(ImageToTokenConfig(image_dim=64, token_dim=64, image_tokens="patches"))
    path = save_image_to_token(tmp_path / "image_to_token.safetensors", module)
    loaded = load_image_to_token(path)
    assert loaded.config == module.config
    for (k, v), (k2, v2) in zip(module.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)

    vector = torch.randn(64)
    emb = save_learned_embeds(tmp_path / "learned_embeds.safetensors", "<mural>", vector)
    c = load_components(tiny_model_dir, ["text_encoder", "tokenizer"])
    assert load_learned_embeds(emb, c.tokenizer, c.text_encoder) == "<mural>"
    row = c.text_encoder.get_input_embeddings().weight[c.tokenizer.convert_tokens_to_ids("<mural>")]
    torch.testing.assert_close(row, vector)
    wrong = save_learned_embeds(tmp_path / "wrong.safetensors", "<x>", torch.randn(32))
    with pytest.raises(ShiftFileError, match="32-d"):
        load_learned_embeds(wrong, c.tokenizer, c.text_encoder)
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(ShiftFileError):
        load_image_to_token(tmp_path / "bad.safetensors")


def test_nearest_tokens_finds_a_copied_word(comps):
    weight = comps.text_encoder.get_input_embeddings().weight
    painting = comps.tokenizer.encode("painting", add_special_tokens=False)[0]
    words = nearest_tokens(comps.tokenizer, comps.text_encoder, weight[painting], k=3)
    assert words[0][0] == "painting" and words[0][1] == pytest.approx(1.0, abs=1e-5)


@pytest.fixture()
def loud_encoder(comps):
    """The tiny vision tower with its projection scaled so ‖image_embeds‖ ≈ 20, as CLIP-L's."""
    proj = comps.image_encoder.visual_projection.weight
    before = proj.detach().clone()
    with torch.no_grad():
        raw = comps.image_encoder(
            **comps.feature_extractor(images=[_image(0)], return_tensors="pt")
        ).image_embeds
        proj.mul_(20.0 / float(raw.norm()))
    yield comps.image_encoder
    with torch.no_grad():
        proj.copy_(before)


def test_encoder_output_has_unit_norm_for_any_image(comps, loud_encoder):
    """InST feeds CLIPModel's L2-normalised image_embeds; the vision tower's raw ones are ≈ 20."""
    images = [
        _image(0),
        _image(1, (300, 200)),
        Image.new("RGB", (64, 64)),
        Image.new("RGB", (50, 90), "white"),
    ]
    for tokens in ("pooled", "patches"):
        feats = encode_images(loud_encoder, comps.feature_extractor, images, tokens)
        torch.testing.assert_close(feats.norm(dim=-1), torch.ones(feats.shape[:2]))


def test_token_starts_at_the_scale_of_a_word(comps, loud_encoder):
    """A fresh module on the encoder's output gives a token of norm < 1 (a CLIP word: ≈ 0.4);
    fed the raw ≈ 20-norm embedding it started ~5× longer (SD size: 3.9 vs 0.72)."""
    torch.manual_seed(0)
    cfg = ImageToTokenConfig.for_models(loud_encoder, comps.text_encoder)
    module = ImageToToken(cfg).eval()
    feats = encode_images(loud_encoder, comps.feature_extractor, [_image(0), _image(1)])
    with torch.no_grad():
        assert float(module(feats).norm(dim=-1).max()) < 1.0
