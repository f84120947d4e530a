"""The loading code path: tiny model round trip, the real CLIP vocabulary, teaching errors."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub.utils import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
)
from PIL import Image

from svdinst.errors import ModelNotFoundError
from svdinst.models.layouts import build_tiny_model
from svdinst.models.loading import ALL_PARTS, load_components, resolve_model


def test_tiny_folder_has_sd_layout(tiny_model_dir: Path) -> None:
    index = json.loads((tiny_model_dir / "model_index.json").read_text())
    for part in ALL_PARTS:
        assert part in index, part
        assert (tiny_model_dir / part).is_dir(), part
    assert index["_class_name"] == "StableDiffusionPipeline"


def test_tokenizer_is_real_clip_vocabulary(tiny_model_dir: Path) -> None:
    comps = load_components("tiny", parts=["tokenizer"])
    tok = comps.tokenizer
    assert len(tok) == 49408
    # Ids of CLIP ViT-L/14 (and so SD-1.4): "a"=320, "painting"=3086, "of"=539, "cat"=2368.
    assert tok("a painting of a cat").input_ids == [49406, 320, 3086, 539, 320, 2368, 49407]
    assert tok.model_max_length == 77
    assert (tiny_model_dir / "tokenizer" / "vocab.json").exists()


def test_padded_ids_pad_every_prompt_to_77(tiny_model_dir: Path) -> None:
    from svdinst.models.clip_vocab import padded_ids

    tok = load_components("tiny", parts=["tokenizer"]).tokenizer
    ids = padded_ids(tok, ["a painting of a cat", ""])
    assert ids.shape == (2, 77) and ids.dtype.is_floating_point is False
    assert ids[0, :7].tolist() == [49406, 320, 3086, 539, 320, 2368, 49407]
    assert ids[0, 7:].eq(49407).all() and ids[1, :2].tolist() == [49406, 49407]  # pad = eos
    assert padded_ids(tok, "cat " * 100).shape == (1, 77)  # truncated, one prompt as a batch


def test_img2img_pipeline_runs_offline(tiny_model_dir: Path) -> None:
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(tiny_model_dir)
    pipe.set_progress_bar_config(disable=True)
    image = Image.fromarray(np.full((64, 64, 3), 128, np.uint8))
    out = pipe(
        "a photo",
        image=image,
        strength=0.8,
        num_inference_steps=4,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert out.size == (64, 64)


def test_build_is_deterministic(tmp_path: Path, tiny_model_dir: Path) -> None:
    from safetensors.torch import load_file

    again = build_tiny_model(tmp_path / "again")
    a = load_file(tiny_model_dir / "unet" / "diffusion_pytorch_model.safetensors")
    b = load_file(again / "unet" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_load_components_parts_device_dtype(tiny_model_dir: Path) -> None:
    comps = load_components(tiny_model_dir, parts=["unet", "image_encoder"], dtype=torch.float16)
    assert comps.vae is None and comps.tokenizer is None
    assert next(comps.unet.parameters()).dtype == torch.float16
    assert not any(p.requires_grad for p in comps.unet.parameters())
    assert comps.image_encoder.config.projection_dim == 64


def test_unknown_part_is_rejected() -> None:
    with pytest.raises(ValueError, match="Unknown model parts"):
        load_components("tiny", parts=["unet", "controlnet"])


def test_missing_hub_model_names_the_fix() -> None:
    with pytest.raises(ModelNotFoundError, match=r"huggingface-cli download nobody/no-such-model"):
        load_components("nobody/no-such-model", parts=["unet"])


def _http(cls: type, status: int) -> Exception:
    """A huggingface_hub HTTP error as the hub raises it (a response with a status code)."""
    response = types.SimpleNamespace(status_code=status, headers={}, request=None)
    return cls(f"{status} Client Error", response=response)


HUB_FAILURES = {  # kind → (the error the hub raises, what the one line must say)
    "gated": (lambda: _http(GatedRepoError, 403), r"403.*accept its licence at https://huggingface\.co/org/model.*huggingface-cli login"),
    "forbidden": (lambda: _http(HfHubHTTPError, 403), r"403.*licence.*huggingface-cli login"),
    "token": (lambda: _http(HfHubHTTPError, 401), r"rejected your token.*401.*huggingface-cli login"),
    "wrong-id": (lambda: _http(RepositoryNotFoundError, 401), r"'org/model' was not found on the hub \(404\).*CompVis/stable-diffusion-v1-4"),
    "missing-file": (lambda: _http(HfHubHTTPError, 404), r"'org/model' was not found on the hub \(404\)"),
    "no-network": (lambda: LocalEntryNotFoundError("offline"), r"not in the local Hugging Face cache and the hub could not be reached"),
    "disk-full": (lambda: OSError(errno.ENOSPC, "No space left on device"), r"disk is full.*huggingface.*about 5 GB.*HF_HOME"),
}  # fmt: skip


@pytest.mark.parametrize("wrapped", [False, True], ids=["raw", "wrapped"])
@pytest.mark.parametrize("kind", sorted(HUB_FAILURES))
def test_hub_failures_each_get_their_own_line(monkeypatch, kind: str, wrapped: bool) -> None:
    from diffusers import UNet2DConditionModel

    make, expected = HUB_FAILURES[kind]

    def from_pretrained(source, **kwargs):
        err = make()
        if not wrapped:
            raise err
        try:  # diffusers and transformers re-raise hub errors as plain OSErrors `from` them
            raise err
        except Exception as cause:
            raise OSError(f"Can't load the model for '{source}'.") from cause

    monkeypatch.delenv("HF_HUB_OFFLINE")  # as on Colab: online
    monkeypatch.setattr(UNet2DConditionModel, "from_pretrained", from_pretrained)
    with pytest.raises(ModelNotFoundError, match=expected) as caught:
        load_components("org/model", parts=["unet"])
    assert "\n" not in str(caught.value)


def test_offline_mode_says_so(monkeypatch) -> None:
    from diffusers import UNet2DConditionModel

    def from_pretrained(source, **kwargs):
        raise LocalEntryNotFoundError("not cached")

    monkeypatch.setattr(UNet2DConditionModel, "from_pretrained", from_pretrained)
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE is set"):
        load_components("org/model", parts=["unet"])


def test_folder_without_unet_is_explained(tmp_path: Path) -> None:
    (tmp_path / "vae").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"no unet/config\.json"):
        resolve_model(tmp_path)


def test_folder_without_image_encoder_is_explained(tmp_path: Path, tiny_model_dir: Path) -> None:
    import shutil

    copy = tmp_path / "no-image-encoder"
    shutil.copytree(tiny_model_dir, copy, ignore=shutil.ignore_patterns("image_encoder"))
    with pytest.raises(ModelNotFoundError, match="has no image_encoder/"):
        load_components(copy, parts=["image_encoder"])


def test_garbage_model_name_is_explained() -> None:
    with pytest.raises(ModelNotFoundError, match="neither an existing folder nor a hub id"):
        resolve_model("./does/not/exist")


def test_cli_tiny_model(tmp_path: Path) -> None:
    from svdinst.cli import main

    assert main(["tiny-model", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "model_index.json").exists()


def test_package_names_its_public_api_lazily() -> None:
    import svdinst.models
    from svdinst.models import clip_vocab, layouts, loading

    assert svdinst.models.load_components is loading.load_components
    assert svdinst.models.SDLayoutConfig is layouts.SDLayoutConfig
    assert svdinst.models.make_clip_tokenizer is clip_vocab.make_clip_tokenizer
    for name in svdinst.models.__all__:
        assert getattr(svdinst.models, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        svdinst.models.nope  # noqa: B018


def test_models_cli_imports_nothing_heavy() -> None:
    # `svdinst --help` imports svdinst.models.cli: torch and diffusers load only when it runs.
    code = (
        "import sys, svdinst.models.cli; "
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_tiny_model_never_deletes_a_users_folder(tmp_path: Path, capsys) -> None:
    from svdinst.cli import main

    out = tmp_path / "v"
    (out / "sub").mkdir(parents=True)
    (out / "thesis.tex").write_text("precious")
    assert main(["tiny-model", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("svdinst: error: ") and "--overwrite" in err[0]
    assert str(out) in err[0]
    assert (out / "thesis.tex").read_text() == "precious" and (out / "sub").is_dir()
    # --overwrite writes beside the user's files, and a rebuild replaces only the model's.
    assert main(["tiny-model", str(out), "--overwrite"]) == 0
    assert main(["tiny-model", str(out)]) == 0
    assert (out / "thesis.tex").read_text() == "precious" and (out / "sub").is_dir()
    assert (out / "model_index.json").is_file()


@pytest.mark.parametrize("where", ["file", "under_file", "read_only"])
def test_cli_tiny_model_unusable_path_is_one_line(
    tmp_path: Path, capsys, monkeypatch, where: str
) -> None:
    import os

    from svdinst.cli import main

    (tmp_path / "f").write_text("x")
    target = {"file": tmp_path / "f", "under_file": tmp_path / "f" / "m"}.get(where, tmp_path / "m")
    if where == "read_only":  # root ignores permissions: simulate a read-only place
        monkeypatch.setattr(os, "access", lambda *a, **k: False)
    assert main(["tiny-model", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("svdinst: error: ")
    assert str(tmp_path) in err[0] or str(target) in err[0]
    assert (tmp_path / "f").read_text() == "x"


def test_cli_tiny_model_permission_error_midway_is_one_line(tmp_path: Path, capsys, monkeypatch):
    from svdinst.cli import main
    from svdinst.models import layouts

    def denied(staged, out):  # root writes everywhere: simulate a read-only file in the way
        raise PermissionError(13, "Permission denied", str(out / "unet"))

    monkeypatch.setattr(layouts, "publish_folder", denied)
    assert main(["tiny-model", str(tmp_path / "m")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and "m/unet: not writable" in err[0] and "permissions" in err[0]
