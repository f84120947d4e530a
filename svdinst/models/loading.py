"""Load Stable Diffusion components from a hub id, a local folder or the tiny offline model.

Every stage of the kit calls :func:`load_components`, whatever the model: the real SD-1.4
(``CompVis/stable-diffusion-v1-4`` plus the ``openai/clip-vit-large-patch14`` image tower that
InST needs), a local copy of it, or the *tiny* model. The tiny model (:mod:`svdinst.models.layouts`)
is read back with the same ``from_pretrained`` calls, so tests exercise the code a real user runs.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from svdinst.cache import cache_dir
from svdinst.errors import ModelNotFoundError
from svdinst.models.layout_config import (
    POCKET_VERSION,
    SD14_RANDOM_VERSION,
    TINY_VERSION,
    SDLayoutConfig,
)
from svdinst.models.layouts import build_sd_layout_model

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, SchedulerMixin, UNet2DConditionModel
    from transformers import (
        CLIPImageProcessor,
        CLIPTextModel,
        CLIPTokenizer,
        CLIPVisionModelWithProjection,
    )

TINY = "tiny"
POCKET = "pocket"  # small SD-layout model pretrained by the kit on offline photos (svdinst.pocket.pretrain)
SD14_RANDOM = "sd14-random"  # SD-1.4's exact shapes, random weights: rehearsals, never quality
SD14_ID = "CompVis/stable-diffusion-v1-4"
CLIP_VISION_ID = "openai/clip-vit-large-patch14"
ALIASES = {"sd14": SD14_ID}
SD14_DOWNLOAD_GB = 5  # unet + vae + text encoder of CompVis/stable-diffusion-v1-4, fp32 files
CLIP_VISION_DOWNLOAD_GB = 1.7  # openai/clip-vit-large-patch14's weights file (fp32)
ALL_PARTS = (
    "unet",
    "vae",
    "text_encoder",
    "tokenizer",
    "scheduler",
    "image_encoder",
    "feature_extractor",
)


@dataclass
class Components:
    """The parts of a Stable Diffusion model that the kit trains and samples with.

    Parts that were not requested are ``None``. ``model_id`` is the name the model was asked by
    (``"tiny"``, a hub id or a folder) and ``source`` the folder or hub id actually read; both are
    recorded in run folders and shift files so a file can be matched to its base model.
    """

    model_id: str
    source: str
    unet: UNet2DConditionModel | None = None
    vae: AutoencoderKL | None = None
    text_encoder: CLIPTextModel | None = None
    tokenizer: CLIPTokenizer | None = None
    scheduler: SchedulerMixin | None = None
    image_encoder: CLIPVisionModelWithProjection | None = None
    feature_extractor: CLIPImageProcessor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# Random-weight models the kit builds itself, by name: (cache folder name, their SD layout).
BUILT_IN_MODELS = {
    TINY: (TINY_VERSION, SDLayoutConfig.tiny),
    SD14_RANDOM: (SD14_RANDOM_VERSION, SDLayoutConfig.sd14),
}


def built_in_model_path(name: str) -> Path:
    """Cache folder of a built-in random-weight model (``"tiny"`` or ``"sd14-random"``)."""
    return cache_dir() / BUILT_IN_MODELS[name][0]


def tiny_model_path() -> Path:
    """Folder of the cached tiny model, built on first use by :func:`resolve_model`."""
    return built_in_model_path(TINY)


def sd14_random_path() -> Path:
    """Folder of the cached ``sd14-random`` model (full SD-1.4 size, random weights, fp16)."""
    return built_in_model_path(SD14_RANDOM)


def pocket_model_path(version: str = POCKET_VERSION) -> Path:
    """Package-data folder of committed pocket weights (``svdinst/weights/<version>``)."""
    return Path(__file__).resolve().parents[1] / "weights" / version


def resolve_model(model: str | os.PathLike) -> str:
    """Turn a model argument into a folder path or hub id that ``from_pretrained`` accepts.

    Args:
        model (`str` or `os.PathLike`): ``"tiny"`` or ``"sd14-random"`` (random weights, built
            into the cache on first use; ``sd14-random`` is SD-1.4's full size), ``"pocket"``
            (pretrained on offline photos, shipped with the package), ``"sd14"``,
            a hub id such as ``"CompVis/stable-diffusion-v1-4"``, or a local pipeline folder.
    """
    name = str(model)
    if name == POCKET:
        path = pocket_model_path()
        if not (path / "model_index.json").is_file():
            raise ModelNotFoundError(
                f"The pocket model's weights are not in '{path}'. Train them with "
                "`svdinst pocket pretrain --out DIR` (minutes on a GPU, longer on a CPU) and pass "
                "DIR as the model, or install a svdinst release that ships them."
            )
        return str(path)
    if name in BUILT_IN_MODELS:
        path = built_in_model_path(name)
        if not (path / "model_index.json").exists():
            if name == SD14_RANDOM:
                print(
                    f"Building '{SD14_RANDOM}' (SD-1.4's shapes, random weights, never for "
                    f"quality claims) into {path}: once, 2.8 GB of fp16 files."
                )
            build_sd_layout_model(path, BUILT_IN_MODELS[name][1]())
        return str(path)
    name = ALIASES.get(name, name)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(
                f"Model path '{path}' is a file; pass a diffusers pipeline folder."
            )
        if not (path / "unet" / "config.json").exists():
            raise ModelNotFoundError(
                f"'{path}' is not a Stable Diffusion pipeline folder: it has no unet/config.json. "
                "Pass the folder that holds model_index.json, unet/, vae/, text_encoder/, tokenizer/ "
                "and scheduler/ (e.g. from `huggingface-cli download CompVis/stable-diffusion-v1-4 "
                "--local-dir DIR`), or `tiny`."
            )
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise ModelNotFoundError(
            f"Model '{name}' is neither an existing folder nor a hub id of the form 'org/name'. "
            "Pass `tiny`, `pocket`, `sd14`, `sd14-random`, a hub id, or a local pipeline folder."
        )
    return name


def hub_offline() -> bool:
    """Whether the kit must not touch the network (``HF_HUB_OFFLINE``, as huggingface_hub reads it)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and the errors it was raised from: diffusers and transformers re-raise the hub's
    typed errors as plain ``OSError``s ``from`` the original."""
    seen: list[BaseException] = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


def _status(err: BaseException) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _hub_error(name: str, err: Exception) -> ModelNotFoundError:
    """One line saying why the hub did not give ``name`` and what to do, by the kind of failure.

    Args:
        name (`str`): the hub id that was asked for.
        err (`Exception`): what ``from_pretrained`` raised.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import GatedRepoError, RepositoryNotFoundError

    chain = _chain(err)
    page = f"https://huggingface.co/{name}"
    if any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in chain):
        return ModelNotFoundError(
            f"The disk is full while downloading '{name}' into the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}): SD-1.4 needs about {SD14_DOWNLOAD_GB} GB there (plus "
            f"{CLIP_VISION_DOWNLOAD_GB} GB for the CLIP-L vision tower). Free space, or set HF_HOME "
            "to a folder on a bigger disk before starting Python."
        )
    if any(isinstance(e, GatedRepoError) for e in chain) or 403 in map(_status, chain):
        return ModelNotFoundError(
            f"The hub refused '{name}' (403: gated or licence not accepted): accept its licence at "
            f"{page} while logged in, then run `huggingface-cli login` (or set HF_TOKEN) here."
        )
    if any(isinstance(e, RepositoryNotFoundError) for e in chain) or 404 in map(_status, chain):
        return ModelNotFoundError(
            f"'{name}' was not found on the hub (404): check the id (SD-1.4 is '{SD14_ID}', the "
            f"vision tower '{CLIP_VISION_ID}'); if it is private, run `huggingface-cli login`."
        )
    if 401 in map(_status, chain):
        return ModelNotFoundError(
            f"The hub rejected your token for '{name}' (401): run `huggingface-cli login` with a "
            "valid token, or unset HF_TOKEN (SD-1.4 itself needs no token)."
        )
    network = (ConnectionError, TimeoutError, FileNotFoundError)  # LocalEntryNotFoundError is one
    if hub_offline() or any(isinstance(e, network) for e in chain):
        why = "HF_HUB_OFFLINE is set" if hub_offline() else "the hub could not be reached"
        return ModelNotFoundError(
            f"Model '{name}' is not in the local Hugging Face cache and {why} "
            f"({type(err).__name__}). Get it on a machine with network: `huggingface-cli download "
            f"{name}` (then copy ~/.cache/huggingface), or `huggingface-cli download {name} "
            "--local-dir DIR` and pass DIR as the model; use `tiny` to run offline."
        )
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return ModelNotFoundError(
        f"Could not load '{name}' from the hub ({type(err).__name__}: {first})."
    )


def _from_pretrained(cls: type, source: str, subfolder: str | None, **kwargs: Any) -> Any:
    """``cls.from_pretrained`` with hub failures turned into one teaching error each."""
    if subfolder is not None:
        kwargs["subfolder"] = subfolder
    try:
        return cls.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as err:  # hub/cache failures surface as OSError subclasses
        if Path(source).exists():
            where = Path(source) / (subfolder or "")
            raise ModelNotFoundError(
                f"Could not load {cls.__name__} from '{where}': {err}".splitlines()[0]
            ) from err
        raise _hub_error(source, err) from err


def load_components(
    model: str | os.PathLike = TINY,
    parts: tuple[str, ...] | list[str] = ALL_PARTS,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    image_encoder: str | os.PathLike | None = None,
) -> Components:
    """Load the requested Stable Diffusion parts, each as its own object (diffusers style).

    Args:
        model (`str` or `os.PathLike`, defaults to ``"tiny"``): see :func:`resolve_model`.
        parts (`tuple[str]`, defaults to all): which of :data:`ALL_PARTS` to load.
        device (`str` or `torch.device`, defaults to ``"cpu"``): where the modules go.
        dtype (`torch.dtype`, defaults to ``torch.float32``): dtype of the (frozen) modules;
            callers cast trainable parameters back to float32 themselves.
        image_encoder (`str`, *optional*): hub id or folder of a ``CLIPVisionModelWithProjection``
            (with its image processor) for InST. Defaults to the model folder's ``image_encoder/``
            when it has one, else ``openai/clip-vit-large-patch14``.

    Returns:
        `Components`: the loaded parts; parts not requested are ``None``.
    """
    unknown = sorted(set(parts) - set(ALL_PARTS))
    if unknown:
        raise ValueError(f"Unknown model parts {unknown}; choose from {list(ALL_PARTS)}.")
    # diffusers and transformers take seconds to import: only when a model is actually loaded.
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import (
        CLIPImageProcessor,
        CLIPTextModel,
        CLIPTokenizer,
        CLIPVisionModelWithProjection,
    )

    source = resolve_model(model)
    comps = Components(model_id=str(model), source=source)
    kw = {"torch_dtype": dtype}
    if "unet" in parts:
        comps.unet = _from_pretrained(UNet2DConditionModel, source, "unet", **kw)
    if "vae" in parts:
        comps.vae = _from_pretrained(AutoencoderKL, source, "vae", **kw)
    if "text_encoder" in parts:
        comps.text_encoder = _from_pretrained(CLIPTextModel, source, "text_encoder", **kw)
    if "tokenizer" in parts:
        comps.tokenizer = _from_pretrained(CLIPTokenizer, source, "tokenizer")
    if "scheduler" in parts:
        # Training uses the DDPM forward process; samplers are built from the same config later.
        comps.scheduler = _from_pretrained(DDPMScheduler, source, "scheduler")
    if "image_encoder" in parts or "feature_extractor" in parts:
        enc_source, enc_sub, proc_sub = _image_encoder_source(source, image_encoder)
        if "image_encoder" in parts:
            comps.image_encoder = _from_pretrained(
                CLIPVisionModelWithProjection, enc_source, enc_sub, **kw
            )
        if "feature_extractor" in parts:
            comps.feature_extractor = _from_pretrained(CLIPImageProcessor, enc_source, proc_sub)
    for name in ("unet", "vae", "text_encoder", "image_encoder"):
        module = getattr(comps, name)
        if module is not None:
            module.to(device)
            module.eval()
            module.requires_grad_(False)
    return comps


def _image_encoder_source(
    source: str, override: str | os.PathLike | None
) -> tuple[str, str | None, str | None]:
    """Where the CLIP vision tower and its processor live: (source, model subfolder, proc subfolder)."""
    if override is not None:
        return str(override), None, None
    folder = Path(source)
    if folder.exists():
        if (folder / "image_encoder" / "config.json").exists():
            return source, "image_encoder", "feature_extractor"
        raise ModelNotFoundError(
            f"Model folder '{folder}' has no image_encoder/ (the CLIP vision tower InST needs). "
            f"Pass image_encoder='{CLIP_VISION_ID}' (or --image-encoder) with a local copy, "
            "or use a folder written by `svdinst tiny-model`."
        )
    return CLIP_VISION_ID, None, None
