"""``svdinst.device.card_memory_gib``: the one reader of a card's memory (training and course)."""

from __future__ import annotations

from types import SimpleNamespace

import torch


def test_card_memory_gib_reads_the_named_card_and_says_none_when_it_cannot(monkeypatch) -> None:
    from svdinst.device import card_memory_gib

    asked = []

    def props(device: torch.device) -> SimpleNamespace:
        asked.append(device)
        return SimpleNamespace(total_memory=15 * 2**30 + 2**29)

    monkeypatch.setattr(torch.cuda, "get_device_properties", props)
    assert card_memory_gib() == 15.5 and asked == [torch.device("cuda:0")]
    assert card_memory_gib(torch.device("cuda", 1)) == 15.5 and asked[-1] == torch.device("cuda:1")
    assert card_memory_gib("cpu") is None and len(asked) == 2  # not a card: never asked

    def no_driver(device: torch.device) -> None:
        raise RuntimeError("Found no NVIDIA driver on your system.")

    monkeypatch.setattr(torch.cuda, "get_device_properties", no_driver)
    assert card_memory_gib("cuda") is None
