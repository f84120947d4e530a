"""LPIPS' AlexNet trunk: fetched through torchvision with network, "unavailable" without.

No test has network: the fetch (``svdinst.models.backbones.download_weights``, or torchvision's
own ``load_state_dict_from_url`` under it) is patched.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch

from svdinst.evaluation.lpips import ALEXNET_CONVS, LpipsUnavailableWarning, load_lpips
from svdinst.models import backbones

ALEXNET_SHAPES = {  # torchvision's alexnet().features conv layers
    0: (64, 3, 11, 11),
    3: (192, 64, 5, 5),
    6: (384, 192, 3, 3),
    8: (256, 384, 3, 3),
    10: (256, 256, 3, 3),
}


@pytest.fixture
def online(monkeypatch, tmp_path) -> Path:
    """As on Colab: network allowed, an empty torch hub cache in ``tmp_path/hub``."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub"


def _alexnet_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(5)
    state = {}
    for idx, shape in ALEXNET_SHAPES.items():
        state[f"features.{idx}.weight"] = torch.randn(shape)
        state[f"features.{idx}.bias"] = torch.randn(shape[0])
    return state


def test_fetched_alexnet_is_used(online: Path, monkeypatch) -> None:
    state, asked = _alexnet_state(), []
    monkeypatch.setattr(backbones, "download_weights", lambda arch: asked.append(arch) or state)
    scorer = load_lpips()
    assert asked == ["alexnet"]
    assert scorer is not None
    assert scorer.backbone == str(online / "checkpoints" / "alexnet-owt-7be5be79.pth")
    trunk = scorer.model.net.state_dict()
    for idx in ALEXNET_CONVS:
        (key,) = [k for k in trunk if k.endswith(f".{idx}.weight")]
        torch.testing.assert_close(trunk[key], state[f"features.{idx}.weight"])


def test_failed_fetch_is_unavailable_with_one_line_saying_how(online: Path, monkeypatch) -> None:
    def no_network(arch):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(backbones, "download_weights", no_network)
    with pytest.warns(LpipsUnavailableWarning) as caught:
        assert load_lpips() is None  # never a random trunk under the LPIPS name
    (warning,) = caught
    line = str(warning.message)
    assert "\n" not in line and "URLError" in line
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in line
    assert "--lpips-backbone FILE" in line and str(online / "checkpoints") in line


def test_offline_never_fetches(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(backbones, "download_weights", lambda arch: pytest.fail("fetched offline"))
    with pytest.warns(LpipsUnavailableWarning, match="HF_HUB_OFFLINE"):
        assert load_lpips() is None


@pytest.mark.parametrize("arch", sorted(backbones.TORCHVISION_WEIGHTS))
def test_the_fetch_is_torchvisions_weights_api(online: Path, monkeypatch, arch: str) -> None:
    # Under download_weights: torchvision's IMAGENET1K_V1.get_state_dict → torch hub's
    # load_state_dict_from_url, which stores the URL's file name in the hub cache. The file
    # names the kit looks for in the cache must be those.
    import torchvision.models._api as api

    urls = []
    monkeypatch.setattr(api, "load_state_dict_from_url", lambda url, **kw: urls.append(url) or {})
    assert backbones.download_weights(arch) == {}
    (url,) = urls
    assert url == backbones.DOWNLOAD_ROOT + backbones.cached_weights(arch).name
