"""Reference rows, equal-N (seed 0) rows, training budgets, and the report's Verdict section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _outputs(root: Path, method: str, stems: list[str], seeds: int) -> Path:
    from svdinst.formats.outputs import OutputsFolder

    folder = OutputsFolder(root / method)
    for stem in stems:
        for k in range(seeds):
            folder.save_image(stem, k, Image.fromarray(np.full((16, 16, 3), 40 * k, np.uint8)))
    return folder.path


def test_seed0_results_evaluate_seed_zero_of_multi_seed_folders(tmp_path: Path) -> None:
    from svdinst.evaluation.references import seed0_results
    from svdinst.formats.outputs import OutputsFolder

    svd = _outputs(tmp_path, "svd-inst", ["a", "b", "c"], 2)
    cyc = _outputs(tmp_path, "cyclegan", ["a", "b", "c"], 1)
    seen = []

    def evaluate_one(view: Path) -> dict:
        files = OutputsFolder(view).collect()
        seen.append({s: [np.asarray(Image.open(p)).max() for p in v] for s, v in files.items()})
        return {"N": sum(len(v) for v in files.values())}

    out = seed0_results({"svd-inst": [svd], "cyclegan": [cyc]}, evaluate_one)
    assert list(out) == ["svd-inst@seed0"]  # one-seed folders are already at the photos' N
    assert out["svd-inst@seed0"][0]["N"] == 3 and out["svd-inst@seed0"][0]["generated"] == str(svd)
    assert seen == [{"a": [0], "b": [0], "c": [0]}]  # seed 0's pixels, not seed 1's (40)


def test_reference_rows_crop_photos_and_split_the_style_set(tmp_path: Path, monkeypatch) -> None:
    import torch

    import svdinst.evaluation.references as refs
    from svdinst.errors import DataError

    style, content = tmp_path / "style", tmp_path / "test"
    style.mkdir()
    content.mkdir()
    for i in range(5):
        Image.fromarray(np.full((64, 64, 3), 30 * i, np.uint8)).save(style / f"s{i}.png")
    for i in range(3):
        Image.fromarray(np.full((64, 96, 3), 50 + i, np.uint8)).save(content / f"p{i}.png")
    calls = []

    def fake_features(images, **kw):  # one row per image: its mean grey level and 7 noise dims
        calls.append(([im.size for im in images], kw.get("cache", False)))
        grey = torch.tensor([float(np.asarray(im).mean()) for im in images])[:, None]
        return torch.cat([grey, torch.randn(len(images), 7, generator=torch.Generator().manual_seed(len(calls)))], 1)  # fmt: skip

    monkeypatch.setattr(refs, "inception_features", fake_features)
    rows = refs.reference_rows(style, content, 16, mural_oracle=True)
    assert list(rows) == ["ref:photos", "ref:oracle", "ref:style-split"]
    assert calls[0] == ([(64, 64)] * 5, True)  # the style set's features: computed once, cached
    assert calls[1] == ([(16, 16)] * 3, False) and calls[2] == ([(16, 16)] * 3, False)
    assert calls[3] == ([(64, 64)] * 2, False) and calls[4] == ([(64, 64)] * 3, False)
    assert len(calls) == 5  # held-out half vs the other half, uncached
    assert rows["ref:photos"][0]["n_reference"] == 5 and rows["ref:oracle"][0]["N"] == 3
    split = rows["ref:style-split"][0]
    assert split["N"] == 2 and split["n_reference"] == 3 and split["fid"] > 0
    photos = rows["ref:photos"][0]
    assert photos["N"] == 3 and photos["reference"] and photos["oracle"]["n"] == 3
    calls.clear()
    assert "ref:oracle" not in refs.reference_rows(style, content, 16, mural_oracle=False)
    assert len(calls) == 4  # styles, photos, the two halves

    (content / "p1.png").unlink()
    (content / "p2.png").unlink()
    with pytest.raises(DataError, match="at least 2 generated images, got 1"):
        refs.reference_rows(style, content, 16)


def test_training_budget_reads_saved_keys_or_derives_them(tmp_path: Path) -> None:
    from svdinst.evaluation.references import training_budget
    from svdinst.formats.run_folder import LossLog, RunFolder

    def run(name: str, config: dict, steps: int = 0) -> Path:
        folder = RunFolder(tmp_path / name)
        folder.path.mkdir()
        folder.write_config(config)
        if steps:
            log = LossLog(folder.log_path, 0)
            for s in range(1, steps + 1):
                log.write(s, 1.0, 1e-3, 0.1)
            log.close()
        return folder.path

    new = run("new", {"baseline": "adain", "train_steps": 5000, "backbone": "published VGG"})
    assert training_budget(new, "adain") == {"train_steps": 5000, "backbone": "published VGG"}
    rnd = run("rnd", {"baseline": "adain", "vgg_weights_source": "random"}, steps=2)
    assert training_budget(rnd, "adain") == {"train_steps": 2, "backbone": "random VGG"}
    pub = run("pub", {"baseline": "stytr2", "vgg_weights_source": "/x/vgg19.pth"}, steps=3)
    assert training_budget(pub, "stytr2")["backbone"] == "published VGG (ImageNet)"
    gan = run("gan", {"baseline": "cyclegan"}, steps=2)
    assert training_budget(gan, "cyclegan") == {
        "train_steps": 2, "backbone": "none (GAN trained from scratch)"
    }  # fmt: skip
    diff = run("diff", {"model": "pocket", "mode": "svd-inst", "steps": 150})
    assert training_budget(diff, "svd-inst@seed0")["train_steps"] == 150
    assert training_budget(None, "magenta")["train_steps"] == 0
    assert training_budget(None, "base")["train_steps"] == 0
    assert training_budget(None, "stargan") == {
        "train_steps": None, "backbone": "none (GAN trained from scratch)"
    }  # fmt: skip


def _row(fid: float, n: int, psnr: float = 14.0, **extra) -> dict:
    return {
        "N": n, "n_reference": 4, "fid": fid, "kid": {"mean": fid / 1e3},
        "oracle": {"psnr": psnr, "ssim": 0.3, "lpips": "unavailable"},
        "lpips_diversity": "unavailable", **extra,
    }  # fmt: skip


def test_verdict_section_blocks_pocket_and_calibration() -> None:
    from svdinst.evaluation.conclusions import limitations_section, verdict_section

    results = {
        "svd-inst": [_row(f, 6) for f in (500.0, 510.0, 520.0)],
        "inst": [_row(f, 6) for f in (540.0, 550.0, 560.0)],
        "svd-inst@seed0": [_row(f, 3) for f in (480.0, 490.0, 500.0)],
        "magenta": [_row(300.0, 3, psnr=20.0, train_steps=0, backbone="pretrained")],
        "adain": [_row(600.0, 3, train_steps=2, backbone="random VGG")],
        "ref:photos": [_row(450.0, 3, reference=True)],
    }
    pocket = {"base": [_row(424.5, 24, psnr=14.4)],
              "svd-inst": [_row(f, 24, psnr=p) for f, p in ((404, 14.0), (414, 14.1), (424, 14.2))]}  # fmt: skip
    text = verdict_section(results, pocket_results=pocket)
    assert text.startswith("## Verdict")
    assert "### Table I at N = 6" in text and "### Table I at N = 3" in text
    assert "### Pocket model table" in text
    answer = text.split("**Answer**")[1].split("###")[0]
    assert (
        "- vs InST: **better** on FID, KID (Table I at N = 6) — besides, 2 comparisons inside"
        in answer
    )
    assert (
        "- vs the baselines: **better** on FID vs AdaIN, KID vs AdaIN (Table I at N = 3); "
        "**worse** on FID vs Magenta, KID vs Magenta, PSNR to oracle vs Magenta (Table I at N = 3)"
    ) in answer
    assert "- vs base model (untrained): **worse** on PSNR to oracle (Pocket model table)" in answer
    n6 = text.split("### Table I at N = 6")[1].split("###")[0]
    assert "SVD-InST vs InST (N = 6): **better** beyond the seed noise on FID" in n6
    assert "Magenta" not in n6 and "AdaIN" not in n6  # N = 3 rows stay out of the N = 6 block
    n3 = text.split("### Table I at N = 3")[1].split("###")[0]
    assert "FID: Magenta (untrained, pretrained);" in n3  # its budget already says untrained
    # Magenta vs AdaIN: one training seed each, no spread: not judged, so not listed
    assert "Magenta, with no training, beats SVD-InST (seed 0 only) on FID, KID, PSNR" in n3
    assert "SVD-InST (seed 0 only) vs AdaIN (N = 3): **better** beyond the seed noise on FID" in n3
    assert "FID 450.0: SVD-InST (seed 0 only), AdaIN score a higher (worse) FID" in n3
    pk = text.split("### Pocket model table")[1]
    assert "base model (untrained), with no training, beats SVD-InST on PSNR to oracle" in pk
    assert "PSNR to oracle: base model (untrained)" in pk
    lim = limitations_section(results, profile_name="pocket", model="pocket", resolution=96,
                              quality_claims=False)  # fmt: skip
    assert "4 style images" in lim and "N = 3, 6" in lim and "AdaIN (2 steps, random VGG)" in lim
    assert "Magenta" not in lim and "LPIPS (and ArtFID) are unavailable" in lim


def test_write_report_has_verdict_tables_figure_caption_and_limitations(tmp_path: Path) -> None:
    from svdinst.course.profiles import get_profile
    from svdinst.evaluation.report import write_report

    results = {
        "svd-inst": [_row(f, 6, lpips_backbone="unavailable") for f in (500.0, 510.0, 520.0)],
        "inst": [_row(f, 6) for f in (540.0, 550.0, 560.0)],
        "ref:photos": [_row(450.0, 3, reference=True)],
    }
    text = write_report(
        tmp_path / "REPORT.md", results, profile=get_profile("tiny", verbose=False),
        figure=tmp_path / "figures" / "f.png", figure_text="Detected automatically, 1 of 6",
    ).read_text()  # fmt: skip
    order = [text.index(h) for h in ("## Verdict", "## Table I", "## Fig. 3", "## Limitations")]
    assert order == sorted(order)
    assert "Detected automatically, 1 of 6" in text and "](figures/f.png)" in text
    assert "| SVD-InST | 3 |" in text and "original FID" in text
    with pytest.raises(Exception, match="at least one method"):
        write_report(tmp_path / "R.md", {"ref:photos": results["ref:photos"]},
                     profile=get_profile("tiny", verbose=False))  # fmt: skip
    json.dumps(results)  # rows stay JSON (metrics files)


@pytest.mark.slow  # the real Inception over ~20 images: ~1 min on 2 busy cores
def test_evaluate_methods_adds_equal_n_and_reference_rows(tmp_path: Path) -> None:
    from svdinst.evaluation.report import evaluate_methods
    from svdinst.formats.outputs import OutputsFolder

    rng = np.random.default_rng(0)
    style, content = tmp_path / "style", tmp_path / "test"
    for folder, n in ((style, 4), (content, 3)):
        folder.mkdir()
        for i in range(n):
            arr = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
            Image.fromarray(arr).save(folder / f"{folder.name}{i}.png")
    for method, seeds in (("svd-inst", 2), ("cyclegan", 1)):
        out = OutputsFolder(tmp_path / "outputs" / method)
        for i in range(3):
            for k in range(seeds):
                arr = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8).repeat(16, 0).repeat(16, 1)
                out.save_image(f"test{i}", k, Image.fromarray(arr))
    results = evaluate_methods(
        tmp_path / "outputs", style, content, equal_n=True, references=True,
        mural_oracle=True, device="cpu", metrics_dir=tmp_path / "metrics",
    )  # fmt: skip
    assert list(results) == ["svd-inst", "cyclegan", "svd-inst@seed0", "ref:photos",
                             "ref:oracle", "ref:style-split"]  # fmt: skip
    assert results["svd-inst"][0]["N"] == 6 and results["svd-inst@seed0"][0]["N"] == 3
    assert results["cyclegan"][0]["N"] == 3 and results["ref:photos"][0]["N"] == 3
    assert results["ref:style-split"][0]["N"] == 2
    # the seed-0 row is the full row's seed 0: FID differs, the oracle of seed 0 is a subset
    assert results["svd-inst@seed0"][0]["fid"] != results["svd-inst"][0]["fid"]
    assert results["cyclegan"][0]["train_steps"] is None  # no run folder: unknown, not 0
    assert (tmp_path / "metrics" / "svd-inst@seed0.json").is_file()
    assert (tmp_path / "metrics" / "ref-photos.json").is_file()


def test_short_answer_separates_inconclusive_from_unjudged() -> None:
    from svdinst.evaluation.conclusions import short_answer

    single = {"svd-inst": [_row(500.0, 3)], "inst": [_row(540.0, 3)], "cyclegan": [_row(600.0, 3)]}
    lines = short_answer([("Table I at N = 3", single)])
    assert lines == [
        "- vs InST: no difference can be claimed — 4 comparisons without a seed spread "
        "(one training seed each).",
        "- vs the baselines: no difference can be claimed — 4 comparisons without a seed spread "
        "(one training seed each).",
    ]
