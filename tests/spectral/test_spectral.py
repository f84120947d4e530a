"""Spectral shifts (SVDiff Eq. 1): exactness, merge/unmerge, save/load, gradients, layout."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from spectral_toys import EXACT, FAST, Plain, plain_input, randomize_shifts
from torch import nn

from svdinst.errors import ShiftFileError
from svdinst.spectral import (
    SpectralShiftConfig,
    add_spectral_shifts,
    load_spectral_shifts,
    merge_spectral_shifts,
    remove_spectral_shifts,
    save_spectral_shifts,
    set_shift_scale,
    spectral_layers,
    spectral_shift_layout,
    spectral_shifts_state_dict,
    unmerge_spectral_shifts,
)


@pytest.fixture(scope="module")
def tiny_unet(tiny_model_dir):
    from svdinst.models.loading import load_components

    return load_components("tiny", parts=["unet"]).unet


def _unet_inputs(unet):
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 8, 8, generator=gen)
    text = torch.randn(1, 5, unet.config.cross_attention_dim, generator=gen)
    return sample, torch.tensor([500]), text


@pytest.mark.parametrize("config", [EXACT, FAST], ids=["exact", "fast"])
def test_zero_shift_reproduces_plain_layers(config):
    model, x = Plain(), plain_input()
    ref = model(x)
    layers = add_spectral_shifts(model, config=config)
    assert set(layers) == {"c1", "c2", "c3", "fc", "out"}
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        f"{n}.delta" for n in layers
    ]
    torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-5)


def test_zero_shift_reproduces_tiny_unet(tiny_unet):
    unet = copy.deepcopy(tiny_unet)
    args = _unet_inputs(unet)
    ref = unet(*args).sample
    layers = add_spectral_shifts(unet, base_model="tiny")  # the session's SVD cache
    assert len(layers) == len(spectral_shift_layout(tiny_unet))
    out = unet(*args).sample
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    randomize_shifts(unet, std=0.5)
    assert (unet(*args).sample - ref).abs().max() > 1e-2  # the shifts do reach the output


def test_merge_equals_unmerged_and_unmerge_restores_bitwise():
    model, x = Plain(), plain_input()
    originals = {n: m.weight.detach().clone() for n, m in model.named_children()}
    add_spectral_shifts(model, config=EXACT)
    randomize_shifts(model)
    unmerged = model(x)
    merge_spectral_shifts(model)
    assert all(layer.merged for layer in spectral_layers(model).values())
    torch.testing.assert_close(model(x), unmerged, rtol=1e-6, atol=1e-6)
    unmerge_spectral_shifts(model)
    for name, layer in spectral_layers(model).items():
        assert torch.equal(layer.base_layer.weight, originals[name])
    torch.testing.assert_close(model(x), unmerged, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("config", [EXACT, FAST], ids=["exact", "fast"])
def test_unmerge_restores_the_very_cpu_tensors(config):
    """Not copies: a copy has the same values at another address, and MKL/oneDNN pick kernels
    (summation orders) by address alignment, so outputs would move by ~1e-6."""
    model, x = Plain(), plain_input()
    tensors = {n: m.weight.data for n, m in model.named_children()}
    values = {n: t.clone() for n, t in tensors.items()}
    add_spectral_shifts(model, config=config)
    randomize_shifts(model)
    model(x), model(x)  # fast path: the 1st forward builds W in a new storage, the 2nd in place
    merge_spectral_shifts(model)
    for name, layer in spectral_layers(model).items():
        assert layer.base_layer.weight.data_ptr() != tensors[name].data_ptr()
    remove_spectral_shifts(model, merge=False)
    for name, module in model.named_children():
        assert module.weight.data_ptr() == tensors[name].data_ptr(), name
        assert torch.equal(module.weight, values[name]), name


def test_shift_scale_zero_is_base_and_remerges():
    model, x = Plain(), plain_input()
    ref = model(x)
    add_spectral_shifts(model, config=EXACT)
    randomize_shifts(model)
    full = model(x)
    merge_spectral_shifts(model)
    set_shift_scale(model, 0.0)
    torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-5)
    set_shift_scale(model, 1.0)
    torch.testing.assert_close(model(x), full, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="finite"):
        set_shift_scale(model, float("nan"))


def test_remove_keeps_merged_weights():
    model, x = Plain(), plain_input()
    add_spectral_shifts(model, config=EXACT)
    randomize_shifts(model)
    shifted = model(x)
    remove_spectral_shifts(model)
    assert not spectral_layers(model) and isinstance(model.c1, nn.Conv2d)
    torch.testing.assert_close(model(x), shifted, rtol=1e-6, atol=1e-6)


def test_delta_gradient_matches_finite_differences():
    """Exact path in float64: autograd's ∂L/∂δ against central differences (gradcheck)."""
    model, x = Plain(torch.float64), plain_input(torch.float64)
    layers = add_spectral_shifts(model, config=EXACT)
    randomize_shifts(model, std=1.0)  # some σ + δ < 0: the ReLU's kink is in play
    set_shift_scale(model, 0.7)
    assert any((lay.S + 0.7 * lay.delta < 0).any() for lay in layers.values())
    names = [f"{n}.delta" for n in layers]

    def f(*ds):
        return torch.func.functional_call(model, dict(zip(names, ds)), (x,))

    inputs = tuple(lay.delta.detach().clone().requires_grad_(True) for lay in layers.values())
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6)


def test_save_load_roundtrip_is_bit_exact(tmp_path):
    model = Plain()
    add_spectral_shifts(model, config=EXACT, base_model="plain-test")
    randomize_shifts(model)
    path = save_spectral_shifts(model, tmp_path / "shifts.safetensors")
    other = Plain()
    add_spectral_shifts(other, config=EXACT, base_model="plain-test")
    meta = load_spectral_shifts(other, path)
    assert meta["base_model"] == "plain-test" and meta["layers"]["c2"] == (6, 2, 3, 3)
    saved, loaded = spectral_shifts_state_dict(model), spectral_shifts_state_dict(other)
    assert all(torch.equal(saved[n], loaded[n]) for n in saved)
    torch.testing.assert_close(other(plain_input()), model(plain_input()), rtol=0, atol=0)


def test_wrong_model_load_fails_clearly(tmp_path):
    model = Plain()
    add_spectral_shifts(model, config=EXACT)
    path = save_spectral_shifts(model, tmp_path / "shifts.safetensors")
    fewer = Plain()
    add_spectral_shifts(fewer, exclude=["^out$"], config=EXACT)
    with pytest.raises(ShiftFileError, match=r"shifts\.safetensors.*does not fit.*\['out'\]"):
        load_spectral_shifts(fewer, path)
    wider = Plain()
    wider.fc = nn.Linear(8 * 4 * 4, 7)
    wider.out = nn.Linear(7, 12)
    add_spectral_shifts(wider, config=EXACT)
    with pytest.raises(ShiftFileError, match=r"layer 'fc' has weight shape \(5, 128\)"):
        load_spectral_shifts(wider, path)
    with pytest.raises(ShiftFileError, match="does not exist"):
        load_spectral_shifts(model, tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ShiftFileError, match=r"junk\.safetensors"):
        load_spectral_shifts(model, tmp_path / "junk.safetensors")
    with pytest.raises(ShiftFileError, match="no spectral shifts"):
        load_spectral_shifts(Plain(), path)


def test_sd14_layout_has_282_layers_and_222696_shifts(tmp_path):
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    with torch.device("meta"):  # SD-1.4's UNet config; shapes only, no memory
        unet = UNet2DConditionModel(cross_attention_dim=768)
    layout = spectral_shift_layout(unet)
    assert len(layout) == 282
    assert sum(k for _, k in layout.values()) == 222_696
    # A shift file of this layout (same writer as save_spectral_shifts) stays under 1 MB.
    meta = {"layers": json.dumps({n: list(s) for n, (s, _) in layout.items()}), "format": "x"}
    save_file({n: torch.zeros(k) for n, (_, k) in layout.items()}, tmp_path / "f.st", meta)
    assert (tmp_path / "f.st").stat().st_size < 1_000_000


def test_bad_arguments():
    with pytest.raises(ValueError, match="svd_method"):
        SpectralShiftConfig(svd_method="qr")
    model = Plain()
    with pytest.raises(ValueError, match=r"No nn\.Linear"):
        add_spectral_shifts(model, include=["nothing-matches"])
    add_spectral_shifts(model, config=EXACT)
    with pytest.raises(ValueError, match="already has spectral shifts"):
        add_spectral_shifts(model)
    with pytest.raises(ValueError, match="add_spectral_shifts"):
        merge_spectral_shifts(Plain())


def test_benchmark_script_small(tmp_path):
    """benchmarks/spectral_step.py --small runs every CPU variant and writes its report section."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "benchmarks" / "spectral_step.py"
    spec = importlib.util.spec_from_file_location("spectral_step", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = tmp_path / "benchmarks.md"
    report.write_text("# Benchmarks\n\n## Someone else's section\n")
    argv = ["--small", "--cpu", "--steps", "1", "--warmup", "0", "--batch-sizes", "1"]
    bench.main([*argv, "--skip-full", "--report", str(report)])
    bench.main([*argv, "--skip-full", "--report", str(report)])  # replaces its own section
    text = report.read_text()
    assert text.count("<!-- spectral_step:begin -->") == 1 and "Someone else's section" in text
    variants = ("| ti |", "| naive |", "| ours-fp32 |", "| ours-bf16 |", "| ours-fact |")
    for variant in (*variants, "| infer-merged |"):
        assert variant in text
    assert "ours-fp32/tf32" in text


@pytest.mark.parametrize("config", [EXACT, FAST], ids=["exact", "fast"])
def test_low_precision_base_weights(config):
    """A bf16 model: factors stay float32 (exact path), zero δ still gives the base output."""
    model, x = Plain(torch.bfloat16), plain_input(torch.bfloat16)
    ref = model(x)
    add_spectral_shifts(model, config=config)
    assert model.c1.S.dtype == torch.float32 and model.c1.delta.dtype == torch.float32
    torch.testing.assert_close(model(x), ref, rtol=2e-2, atol=2e-2)
    randomize_shifts(model)
    model(x).float().square().sum().backward()
    assert all(lay.delta.grad.abs().sum() > 0 for lay in spectral_layers(model).values())
    state = model.state_dict()
    assert "c1.delta" in state and "c1.U" not in state  # factors are not checkpointed


def test_state_dict_holds_base_weights_and_shifts_only():
    model = Plain()
    add_spectral_shifts(model, config=EXACT)
    keys = set(model.state_dict())
    assert keys == {
        f"{n}.base_layer.{p}" for n in ("c1", "c2", "fc", "out") for p in ("weight", "bias")
    } | {"c3.base_layer.weight"} | {f"{n}.delta" for n in ("c1", "c2", "c3", "fc", "out")}
