"""`svdinst pocket style-check`: its captions, reference crops, classifier and bookkeeping."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from svdinst.data.styles import STYLES_V2
from svdinst.pocket import style_check as sc
from svdinst.pocket.data import POCKET_PHOTOS, all_captions, is_grayscale, load_pocket_photo
from svdinst.pocket.style_report import (
    style_check_markdown,
    style_check_reading,
    style_check_section,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
STYLES = ("woodcut", "halftone", "mosaic")


def test_class_captions_are_pretraining_captions():
    """The check must ask in the words the UNet was trained on, or it measures nothing."""
    photos = tuple(p for p in POCKET_PHOTOS if p.stem in sc.SUBJECTS)
    grays = [is_grayscale(load_pocket_photo(p)) for p in photos]
    known = set(all_captions(photos, grays, STYLES_V2))
    for cls in (sc.PHOTO, *STYLES_V2):
        caps = sc.class_captions(cls)
        assert len(caps) == len(sc.SUBJECTS) and set(caps) <= known, cls
    assert sc.class_captions("woodcut", ["chelsea"]) == ["a cat in woodcut"]
    assert sc.class_captions(sc.PHOTO, ["chelsea"]) == ["a photo of a cat"]


def test_styled_crops_give_every_class_and_a_new_set_per_seed():
    a = sc.styled_crops(32, STYLES[:1], per_photo=1, seed=0)
    b = sc.styled_crops(32, STYLES[:1], per_photo=1, seed=1)
    assert list(a) == [sc.PHOTO, "woodcut"]
    assert len(a[sc.PHOTO]) == len(a["woodcut"]) == len(POCKET_PHOTOS)
    assert all(im.size == (32, 32) and im.mode == "RGB" for im in a["woodcut"])
    assert all(np.asarray(x).tobytes() != np.asarray(y).tobytes()
               for x, y in zip(a[sc.PHOTO], b[sc.PHOTO]))  # fmt: skip
    assert np.asarray(a[sc.PHOTO][0]).tobytes() != np.asarray(a["woodcut"][0]).tobytes()


def test_nearest_centroid_and_confusion():
    centroids = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    feats = torch.tensor([[1.0, 1.0], [9.0, -1.0], [-1.0, 8.0], [6.0, 0.0]])
    assert sc.nearest_centroid(centroids, feats).tolist() == [0, 1, 2, 1]
    table = sc.confusion([0, 0, 1, 2], [0, 1, 1, 1], 3)
    assert table.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]


def _solid(level: int) -> Image.Image:
    return Image.new("RGB", (8, 8), (level, level, level))


def test_style_check_counts_what_each_caption_drew(monkeypatch):
    """Classes are solid grey levels and the feature is the mean pixel, so the classifier is
    exact; the stub draws photo for "photo", woodcut for woodcut and halftone, halftone for
    mosaic. The table, accuracy and names must say exactly that."""
    level = {sc.PHOTO: 0, "woodcut": 80, "halftone": 160, "mosaic": 240}

    def crops(resolution, styles, per_photo=2, seed=0):
        return {c: [_solid(level[c])] * (3 + seed) for c in (sc.PHOTO, *styles)}

    drawn = {sc.PHOTO: sc.PHOTO, "woodcut": "woodcut", "halftone": "woodcut", "mosaic": "halftone"}

    def sample(captions, seed):
        cls = captions[0].rsplit(" in ", 1)[1] if " in " in captions[0] else sc.PHOTO
        return [_solid(level[drawn[cls]]) for _ in captions]

    def features(images):
        return torch.tensor([[np.asarray(im, float).mean()] for im in images])

    monkeypatch.setattr(sc, "styled_crops", crops)
    m = sc.style_check(sample, features, 8, styles=STYLES, seeds=(0, 1, 2))
    n = 3 * len(sc.SUBJECTS)
    assert m["classes"] == [sc.PHOTO, *STYLES] and m["n_per_class"] == n
    assert m["confusion"] == [[n, 0, 0, 0], [0, n, 0, 0], [0, n, 0, 0], [0, 0, n, 0]]
    assert m["accuracy"] == 0.5 and m["chance"] == 0.25 and m["classifier_accuracy"] == 1.0
    assert m["predicted"]["mosaic"] == ["halftone"] * n
    text = style_check_markdown(m)
    assert "| halftone | 0 | 12 | 0 | 0 |" in text and "**50%** of 48 (chance 25%" in text
    fig = sc.style_check_figure(m)
    assert len([ax for ax in fig.axes if ax.images]) == 4 * n


def test_the_sampler_draws_one_image_per_caption_repeatably(tiny_model_dir):
    from svdinst.models.loading import load_components

    parts = ("vae", "unet", "text_encoder", "tokenizer", "scheduler")
    comps = load_components(tiny_model_dir, parts)
    sample = sc.diffusers_sampler(comps, 64, steps=2, guidance=3.0)
    caps = sc.class_captions("woodcut")[:2]
    a, b = sample(caps, 0), sample(caps, 0)
    assert len(a) == 2 and a[0].size == (64, 64)
    assert [np.asarray(x).tobytes() for x in a] == [np.asarray(x).tobytes() for x in b]
    assert np.asarray(sample(caps, 1)[0]).tobytes() != np.asarray(a[0]).tobytes()


def _result(confusion, classifier=0.9):
    n = sum(confusion[0])
    table = np.array(confusion)
    return {"classes": [sc.PHOTO, *STYLES], "confusion": confusion, "n_per_class": n,
            "accuracy": float(np.trace(table) / table.sum()), "chance": 0.25,
            "classifier_accuracy": classifier, "steps": 50, "guidance": 3.0,
            "resolution": 128}  # fmt: skip


def test_the_reading_names_the_dominant_look_and_says_when_captions_do_not_steer():
    weak = style_check_reading(_result([[2, 2, 0, 0], [0, 4, 0, 0], [0, 3, 1, 0], [1, 3, 0, 0]]))
    assert "most frequent look is woodcut: 12 of 16" in weak
    assert "Never drawn when asked for: mosaic." in weak and "barely steer" in weak
    good = style_check_reading(_result([[4, 0, 0, 0], [0, 4, 0, 0], [0, 0, 3, 1], [0, 0, 0, 4]]))
    assert "barely steer" not in good and "Never drawn" not in good


def test_report_section_shows_the_check(tmp_path):
    from svdinst.pocket.report import _vae_and_selection
    from svdinst.pocket.style_report import STYLE_CHECK_NAME

    assert style_check_section(tmp_path) == []
    (tmp_path / "pocket").mkdir()
    m = _result([[2, 2, 0, 0], [0, 4, 0, 0], [0, 3, 1, 0], [1, 3, 0, 0]])
    (tmp_path / "pocket" / f"{STYLE_CHECK_NAME}.json").write_text(json.dumps(m))
    text = "\n".join(_vae_and_selection(tmp_path))
    assert "### Does the UNet draw the style its caption names?" in text
    assert "| woodcut | 0 | 4 | 0 | 0 |" in text and "**44%** of 16" in text
    assert "![samples" not in text  # no figure committed
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / f"{STYLE_CHECK_NAME}.png").write_bytes(b"png")
    assert f"(figures/{STYLE_CHECK_NAME}.png)" in "\n".join(style_check_section(tmp_path))


def test_run_style_check_writes_json_and_figure(tiny_model_dir, tmp_path):
    """End to end on the tiny model with the real Inception features, two classes, two steps."""
    m = sc.run_style_check(tiny_model_dir, tmp_path, steps=2, styles=("woodcut",))
    saved = json.loads((tmp_path / f"{sc.STYLE_CHECK_NAME}.json").read_text())
    assert saved["classes"] == [sc.PHOTO, "woodcut"] and "samples" not in saved
    assert saved["n_per_class"] == 2 * len(sc.SUBJECTS) and saved["steps"] == 2
    assert sum(map(sum, saved["confusion"])) == 2 * saved["n_per_class"]
    assert saved["classifier_accuracy"] >= 0.9, saved  # woodcut vs photo: far above chance (0.5)
    assert (tmp_path / m["figure"]).is_file() and m["figure"] == f"{sc.STYLE_CHECK_NAME}.png"
