"""LoRA export of spectral shifts: exact at full rank, Eckart–Young error at rank r, loads in diffusers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from spectral_toys import EXACT, Plain, plain_input, randomize_shifts

from svdinst.cli import main
from svdinst.spectral import (
    add_spectral_shifts,
    export_lora,
    merge_spectral_shifts,
    remove_spectral_shifts,
    save_lora,
    save_spectral_shifts,
    spectral_layers,
)


def _lora_delta(export, name, weight_shape):
    a = export[f"unet.{name}.lora_A.weight"].double()
    b = export[f"unet.{name}.lora_B.weight"].double()
    return (b.reshape(b.shape[0], -1) @ a.reshape(a.shape[0], -1)).view(weight_shape)


def _shifted_plain():
    model = Plain(torch.float64)
    originals = {n: m.weight.detach().clone() for n, m in model.named_children()}
    add_spectral_shifts(model, config=EXACT)
    randomize_shifts(model, std=1.0)  # includes σ + δ < 0, where relu clips
    merge_spectral_shifts(model)
    merged = {
        n: lay.base_layer.weight.detach().clone() for n, lay in spectral_layers(model).items()
    }
    return model, originals, merged


def test_full_rank_reproduces_merged_weights():
    model, originals, merged = _shifted_plain()
    export = export_lora(model, rank=64)
    assert export.total_error == 0.0
    for name, w in merged.items():
        rebuilt = originals[name] + _lora_delta(export, name, w.shape)
        torch.testing.assert_close(rebuilt, w, rtol=1e-10, atol=1e-10)
    # c2 has k = min(6, 2·3·3) = 6 singular values: rank 64 is capped at 6, not zero-padded.
    assert export["unet.c2.lora_A.weight"].shape == (6, 2, 3, 3)  # kh×kw down conv (groups=3)
    assert export["unet.c2.lora_B.weight"].shape == (6, 6, 1, 1)  # 1×1 up conv
    assert export["unet.fc.lora_A.weight"].shape == (5, 128)  # k = min(5, 128)
    assert export.rank == 64


@pytest.mark.parametrize("rank", [1, 2, 4])
def test_rank_r_error_equals_reported_bound(rank):
    model, originals, merged = _shifted_plain()
    export = export_lora(model, rank=rank)
    for name, w in merged.items():
        full = (w - originals[name]).reshape(w.shape[0], -1)
        err = (full - _lora_delta(export, name, w.shape).reshape_as(full)).norm()
        assert err.item() == pytest.approx(export.errors[name], rel=1e-8, abs=1e-10)
        # Eckart–Young: the exported rank-r factorization is the best one.
        sv = torch.linalg.svdvals(full)
        assert export.errors[name] == pytest.approx(sv[rank:].norm().item(), rel=1e-8, abs=1e-10)
    assert 0 < export.relative_error < 1


@pytest.fixture(scope="module")
def tiny_pipe(tiny_model_dir):
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(tiny_model_dir, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _stylize(pipe) -> np.ndarray:
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    return pipe(
        prompt="a photo",
        image=image,
        strength=0.8,
        num_inference_steps=3,
        guidance_scale=1.0,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    ).images[0]


def test_lora_file_loads_in_diffusers_and_moves_output_to_merged(tiny_pipe, tmp_path):
    base = _stylize(tiny_pipe)
    originals = {n: p.detach() for n, p in tiny_pipe.unet.named_parameters()}
    add_spectral_shifts(tiny_pipe.unet, base_model="tiny")
    randomize_shifts(tiny_pipe.unet, std=0.5)
    merge_spectral_shifts(tiny_pipe.unet)
    merged = _stylize(tiny_pipe)
    full = max(layer.S.numel() for layer in spectral_layers(tiny_pipe.unet).values())
    files = {r: save_lora(export_lora(tiny_pipe.unet, r), tmp_path / f"r{r}.st") for r in (4, full)}
    remove_spectral_shifts(tiny_pipe.unet, merge=False)
    restored = dict(tiny_pipe.unet.named_parameters())
    assert restored.keys() == originals.keys()
    for name, weight in originals.items():
        # The very tensors come back, not equal copies: MKL/oneDNN choose kernels (and summation
        # orders) by the weight's address alignment, so a copy made the output differ by ~1e-6.
        assert restored[name].data_ptr() == weight.data_ptr(), name
        assert torch.equal(restored[name], weight), name
    np.testing.assert_array_equal(_stylize(tiny_pipe), base)  # same tensors, same kernels
    gap = np.abs(base - merged).mean()
    assert gap > 1e-3
    for rank, path in files.items():
        tiny_pipe.load_lora_weights(str(path), adapter_name=f"r{rank}")
        tiny_pipe.set_adapters([f"r{rank}"])
        out = _stylize(tiny_pipe)
        tiny_pipe.delete_adapters([f"r{rank}"])
        if rank == full:  # full rank for every tiny layer: the merged model itself
            assert np.abs(out - merged).max() < 1e-3
        else:
            assert np.abs(out - merged).mean() < 0.8 * gap


def test_export_lora_cli(tiny_model_dir, tmp_path, capsys):
    from svdinst.models.loading import load_components

    unet = load_components("tiny", parts=["unet"]).unet
    add_spectral_shifts(unet, base_model="tiny")  # all layers: the session's SVD cache hits
    randomize_shifts(unet)
    run = tmp_path / "run"
    save_spectral_shifts(unet, run / "spectral_shifts.safetensors")
    (run / "config.json").write_text(json.dumps({"model": "tiny", "mode": "svdiff"}))
    out = tmp_path / "lora.safetensors"
    assert main(["export-lora", "--run", str(run), "--rank", "3", "--out", str(out)]) == 0
    assert "rank 3" in capsys.readouterr().out
    with safe_open(str(out), framework="pt") as fh:
        assert fh.metadata()["rank"] == "3" and fh.metadata()["base_model"] == "tiny"
        keys = set(fh.keys())
    assert len(keys) == 2 * len(spectral_layers(unet))
    rc = main(["export-lora", "--run", str(tmp_path / "nope"), "--rank", "3", "--out", str(out)])
    assert rc == 2
    assert "'" + str(tmp_path / "nope") + "' does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()  # a folder that is not a run folder: names the missing file
    rc = main(["export-lora", "--run", str(tmp_path / "empty"), "--rank", "3", "--out", str(out)])
    assert rc == 2
    assert "has no config.json" in capsys.readouterr().err
    rc = main(["export-lora", "--run", str(run), "--rank", "0", "--out", str(out)])
    assert rc == 2  # one line, not a ValueError traceback
    assert "--rank must be a positive integer" in capsys.readouterr().err


def test_rank_above_every_layer_is_capped_and_exact():
    model, _, _ = _shifted_plain()
    export = export_lora(model, rank=1000)
    for name, layer in spectral_layers(model).items():
        k = layer.S.numel()
        assert export[f"unet.{name}.lora_A.weight"].shape[0] == k
        assert export[f"unet.{name}.lora_B.weight"].shape[1] == k
    assert export.total_error == 0.0


def test_bad_rank():
    model = Plain()
    add_spectral_shifts(model, config=EXACT)
    with pytest.raises(ValueError, match="positive integer"):
        export_lora(model, 0)
    assert model(plain_input()).shape == (3, 12)
