"""Issue 13, finding 3 and deliver 3: a merged Stylizer is a plain UNet (no SVD factors left),
``close()`` frees it, stylizing reuses training's SVD cache file, and an interrupted
``stylize_folder`` finishes with only the missing images."""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from stylize_helpers import FAST, _maxdiff, _photo

from svdinst.errors import SvdinstError


def _state(module: torch.nn.Module) -> tuple[list[str], int]:
    sd = module.state_dict()
    extra = sum(b.numel() for b in module.buffers())  # non-persistent buffers (U, σ, Vᵀ) too
    return sorted(sd), sum(t.numel() for t in sd.values()) + extra


def test_merged_stylizer_unet_is_a_plain_unet(svd_run: Path) -> None:
    from svdinst.models.loading import load_components
    from svdinst.spectral import add_spectral_shifts, load_spectral_shifts, merge_spectral_shifts
    from svdinst.spectral.layer import SpectralShiftLayer
    from svdinst.stylize.stylizer import Stylizer

    st = Stylizer(run=svd_run, merge=True)
    unet = st.pipe.unet
    fresh = load_components("tiny", ["unet"]).unet
    assert not [m for m in unet.modules() if isinstance(m, SpectralShiftLayer)]
    assert _state(unet) == _state(fresh)  # no δ, no factors, no base_layer. prefixes
    assert not [k for k in vars(unet) if k.startswith("_svdinst")]
    assert not unet._forward_pre_hooks  # the fast path's refresh hook is gone
    # Stock GEMMs: every weight contiguous (no transposed view of the factors' product) and
    # in one dtype (no float32 leftovers of the float32 merge).
    assert all(p.is_contiguous() for p in unet.parameters())
    assert {p.dtype for p in unet.parameters()} == {p.dtype for p in fresh.parameters()}
    half = Stylizer(run=svd_run, dtype=torch.float16).pipe.unet
    assert {p.dtype for p in half.parameters()} == {torch.float16}
    assert all(p.is_contiguous() for p in half.parameters())

    wrapped = load_components("tiny", ["unet"]).unet  # the merged wrappers, as before the fix
    add_spectral_shifts(wrapped, base_model="tiny")
    load_spectral_shifts(wrapped, svd_run / "spectral_shifts.safetensors")
    merge_spectral_shifts(wrapped)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, unet.config.in_channels, 8, 8, generator=g)
    cond = torch.randn(2, 77, unet.config.cross_attention_dim, generator=g)
    t = torch.tensor([10, 500])
    with torch.no_grad():
        torch.testing.assert_close(unet(x, t, cond).sample, wrapped(x, t, cond).sample)


def test_speed_levers_change_round_off_only(svd_run: Path) -> None:
    from svdinst.stylize.speed import SpeedOptions
    from svdinst.stylize.stylizer import StylizeConfig, Stylizer

    cfg = StylizeConfig(**FAST)
    plain = Stylizer(run=svd_run)
    fast = Stylizer(run=svd_run, speed=SpeedOptions(channels_last=True, fuse_qkv=True))
    procs = {type(p).__name__ for p in fast.pipe.unet.attn_processors.values()}
    assert procs == {"FusedAttnProcessor2_0"}  # fused projections, SDPA attention
    a, b = plain.stylize(_photo(5), [0, 1], cfg), fast.stylize(_photo(5), [0, 1], cfg)
    assert max(_maxdiff(x, y) for x, y in zip(a, b)) <= 2
    assert fast.settings(cfg)["speed"]["fuse_qkv"] and not plain.settings(cfg)["speed"]["fuse_qkv"]


def test_compile_lever_compiles_the_unet_and_the_vae(svd_run: Path) -> None:
    """``--compile`` wraps the UNet and the VAE's encoder and decoder (the VAE's decoder was a
    twelfth of a stylized image's time uncompiled on an H100); nothing is compiled by default.
    Compiling itself happens at the first call, which a CPU test does not pay for."""
    from svdinst.stylize.speed import SpeedOptions
    from svdinst.stylize.stylizer import Stylizer

    def compiled(st: Stylizer) -> list[bool]:
        vae = st.pipe.vae
        return [m._compiled_call_impl is not None for m in (st.pipe.unet, vae.encoder, vae.decoder)]

    with (
        Stylizer(run=svd_run) as plain,
        Stylizer(run=svd_run, speed=SpeedOptions(compile=True)) as st,
    ):
        assert compiled(plain) == [False, False, False]
        assert compiled(st) == [True, True, True]


def test_close_frees_the_model(svd_run: Path) -> None:
    from svdinst.stylize.stylizer import Stylizer

    with Stylizer(run=svd_run) as st:
        unet = weakref.ref(st.pipe.unet)
        assert unet() is not None
    assert st.pipe is None and unet() is None  # nothing else kept the model alive
    with pytest.raises(SvdinstError, match="closed"):
        st.stylize(_photo(3), [0])


def test_stylizing_in_fp16_uses_trainings_svd_cache_file(
    svd_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Training (fp32) and a float16 Stylizer ask for one cache file; the unmerged float16
    Stylizer's factors are training's (float32 here, since the exact path keeps float32)."""
    import svdinst.spectral.svd as svd
    from svdinst.models.loading import load_components
    from svdinst.spectral import add_spectral_shifts, spectral_layers
    from svdinst.stylize.stylizer import Stylizer

    monkeypatch.setattr(svd, "cache_dir", lambda: tmp_path)
    train_unet = load_components("tiny", ["unet"]).unet  # what training decomposes
    trained = add_spectral_shifts(train_unet, base_model="tiny")
    files = sorted((tmp_path / "spectral").iterdir())
    assert len(files) == 1
    Stylizer(run=svd_run, dtype=torch.float16)  # merged: decomposes the fp32 weights
    unmerged = Stylizer(run=svd_run, dtype=torch.float16, merge=False)
    assert sorted((tmp_path / "spectral").iterdir()) == files  # no second (fp16) file
    layers = spectral_layers(unmerged.pipe.unet)
    assert layers.keys() == trained.keys()
    for name, layer in layers.items():
        assert layer.base_layer.weight.dtype == torch.float16
        for ours, theirs in zip((layer.U, layer.S, layer.Vh), (trained[name].U, trained[name].S,
                                                               trained[name].Vh)):  # fmt: skip
            torch.testing.assert_close(ours.float(), theirs.float(), rtol=0, atol=0)


def test_merged_float16_unet_is_compacted_on_its_device(
    svd_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Merged in float32 then cast: the UNet is moved host → card again (stock's allocator
    layout, issue 15's batch-4 reserved memory); bare models and float32 skip it."""
    import svdinst.stylize.stylizer as stylizer_mod
    from svdinst.stylize.speed import compact_on_device

    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(stylizer_mod, "compact_on_device",
                        lambda m, d: calls.append((type(m).__name__, str(d))))  # fmt: skip
    stylizer_mod.Stylizer(run=svd_run, dtype=torch.float16)
    assert calls == [("UNet2DConditionModel", "cpu")]
    stylizer_mod.Stylizer(run=svd_run)  # float32: merged where it lives, nothing to compact
    stylizer_mod.Stylizer("tiny", dtype=torch.float16)
    assert len(calls) == 1

    moves: list[str] = []

    class Module(torch.nn.Module):
        def to(self, *args, **kwargs):  # type: ignore[override]
            moves.append(str(args[0]))
            return self

    compact_on_device(Module(), "cpu")
    assert moves == []  # off CUDA: nothing to compact
    compact_on_device(Module(), "cuda:1")
    assert moves == ["cpu", "cuda:1"]  # to the host, cache released, back to its own card


def _images(folder: Path) -> dict[str, np.ndarray]:
    return {
        str(p.relative_to(folder)): np.asarray(Image.open(p))
        for p in sorted(folder.rglob("seed-*.png"))
    }


def test_interrupted_stylize_writes_only_the_missing_images(
    svd_run: Path,
    data_dirs,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from svdinst.stylize.stylizer import StylizeConfig, Stylizer, stylize_folder

    content = tmp_path / "content"
    content.mkdir()
    for k in range(2):
        _photo(20 + k).save(content / f"photo{k}.png")
    # pairs (photo0, 0) (photo0, 1) | (photo0, 2) (photo1, 0) | (photo1, 1) (photo1, 2)
    cfg = StylizeConfig(seeds=3, **{**FAST, "batch_size": 2})
    st = Stylizer(run=svd_run)
    whole = stylize_folder(st, content, tmp_path / "whole", cfg)
    assert sum(len(v) for v in whole.values()) == 6

    calls: list[list[int]] = []  # the seeds of each batch
    real = Stylizer.stylize_batch

    def crash_on_third(self, images, seeds, config=None):
        calls.append(list(seeds))
        if len(calls) == 3:
            raise RuntimeError("disconnected")
        return real(self, images, seeds, config)

    monkeypatch.setattr(Stylizer, "stylize_batch", crash_on_third)
    with pytest.raises(RuntimeError, match="disconnected"):
        stylize_folder(st, content, tmp_path / "cut", cfg)
    assert len(_images(tmp_path / "cut")) == 4  # the first two batches
    calls.clear()
    monkeypatch.setattr(Stylizer, "stylize_batch", lambda self, *a, **k: calls.append(a[1]) or
                        real(self, *a, **k))  # fmt: skip
    stylize_folder(st, content, tmp_path / "cut", cfg)
    assert calls == [[1, 2]]  # only the third batch (photo1's seeds 1 and 2)
    ours, ref = _images(tmp_path / "cut"), _images(tmp_path / "whole")
    assert ours.keys() == ref.keys()
    for key in ref:
        np.testing.assert_array_equal(ours[key], ref[key])
    calls.clear()
    stylize_folder(st, content, tmp_path / "cut", cfg)
    assert calls == []  # finished: nothing to redo
    (tmp_path / "cut" / "photo1" / "seed-0.png").unlink()
    stylize_folder(st, content, tmp_path / "cut", cfg)
    assert calls == [[2, 0]]  # a batch is redone whole: (photo0, 2) beside (photo1, 0)
    calls.clear()
    stylize_folder(st, content, tmp_path / "cut", StylizeConfig(seeds=3, **{**FAST,
                   "strength": 0.5}))  # fmt: skip
    assert len(calls) == 3  # other settings: every image is made again


def test_cli_keeps_images_unless_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    import svdinst.stylize.stylizer as stylizer
    from svdinst.cli import build_parser

    seen = []
    monkeypatch.setattr(stylizer, "Stylizer", lambda *a, **k: None)
    monkeypatch.setattr(stylizer, "stylize_folder", lambda *a, resume: seen.append(resume) or {})
    for extra in ([], ["--restart"]):
        args = build_parser().parse_args(["stylize", "--content", "c", "--out", "o", *extra])
        args.func(args)
    assert seen == [True, False]
