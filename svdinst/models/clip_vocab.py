"""SD-1.4's CLIP tokenizer without a download: the real BPE vocabulary rebuilt offline.

``open-clip-torch`` ships CLIP's BPE merges file; from it :func:`write_clip_vocabulary` writes the
``vocab.json`` / ``merges.txt`` pair of SD-1.4's ``tokenizer/`` folder (49,408 entries), so every
model the kit builds (tiny, sd14-random, pocket) tokenizes prompts exactly as SD-1.4 does.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING

from svdinst.errors import ModelNotFoundError

if TYPE_CHECKING:
    import torch
    from transformers import CLIPTokenizer

# tokenizer/tokenizer_config.json of CompVis/stable-diffusion-v1-4 (the fields that matter).
SD14_TOKENIZER_CONFIG = {
    "model_max_length": 77,
    "do_lower_case": True,
    "bos_token": "<|startoftext|>",
    "eos_token": "<|endoftext|>",
    "unk_token": "<|endoftext|>",
    "pad_token": "<|endoftext|>",
    "tokenizer_class": "CLIPTokenizer",
}


def clip_bpe_path() -> Path:
    """The real CLIP BPE merges file that ``open-clip-torch`` ships (no import of open_clip)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "The CLIP vocabulary comes from the `open-clip-torch` package; `pip install open-clip-torch`."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.exists():
        raise ModelNotFoundError(
            f"open-clip-torch is installed but '{path}' is missing; reinstall it."
        )
    return path


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP/GPT-2's reversible byte → printable-unicode table (256 entries)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def write_clip_vocabulary(out_dir: Path) -> tuple[Path, Path]:
    """Write CLIP's ``vocab.json`` (49,408 entries) and ``merges.txt`` from the shipped BPE file.

    The construction follows CLIP's ``SimpleTokenizer``: 256 byte symbols, the same with ``</w>``,
    the first 48,894 merges, then ``<|startoftext|>`` and ``<|endoftext|>``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with gzip.open(clip_bpe_path(), "rt", encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    vocab_file, merges_file = out_dir / "vocab.json", out_dir / "merges.txt"
    vocab_file.write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False))
    merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return vocab_file, merges_file


def make_clip_tokenizer(folder: Path) -> CLIPTokenizer:
    """SD-1.4's ``CLIPTokenizer`` (real BPE vocabulary), written into ``folder`` and loaded from it.

    Args:
        folder (`Path`): where ``vocab.json``, ``merges.txt`` and ``tokenizer_config.json`` go.
    """
    from transformers import CLIPTokenizer  # seconds to import: only when a model is built

    write_clip_vocabulary(folder)
    (folder / "tokenizer_config.json").write_text(json.dumps(SD14_TOKENIZER_CONFIG))
    return CLIPTokenizer.from_pretrained(folder)


def padded_ids(tokenizer: CLIPTokenizer, prompts: str | list[str]) -> torch.Tensor:
    """Token ids of ``prompts`` padded (and truncated) to the tokenizer's 77, as SD-1.4 reads them.

    Stable Diffusion's UNet was trained on the text tower's states at all 77 positions, so every
    prompt the kit encodes (training, pretraining, checks) is padded to ``model_max_length``.

    Args:
        tokenizer (`CLIPTokenizer`): the model's tokenizer.
        prompts (`str` or `list[str]`): one prompt or a batch.

    Returns:
        `torch.Tensor`: ``(batch, 77)`` int64 ids on the CPU.
    """
    return tokenizer(prompts, padding="max_length", truncation=True,
                     max_length=tokenizer.model_max_length, return_tensors="pt").input_ids  # fmt: skip
