"""Shared fixtures: no network, one tiny model per test session, a small image set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never touch the hub: a missing model must fail fast with our error, not download.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session", autouse=True)
def _svdinst_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Use the CI/user cache when given (the tiny model is built once), else a session folder."""
    if "SVDINST_CACHE" not in os.environ:
        os.environ["SVDINST_CACHE"] = str(tmp_path_factory.mktemp("svdinst-cache"))
    return Path(os.environ["SVDINST_CACHE"])


@pytest.fixture(scope="session")
def tiny_model_dir(_svdinst_cache: Path) -> Path:
    """The tiny SD-layout pipeline folder (built on first use, then reused)."""
    from svdinst.models.loading import resolve_model

    return Path(resolve_model("tiny"))


@pytest.fixture(scope="module")
def one_thread():
    """One CPU thread for a module: toy models are latency-bound (more threads only oversubscribe
    a busy 2-core CI box), and bit-identity checks hold within one thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
