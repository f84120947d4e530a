"""The Verdict is computed: equal N only, gaps judged against the pooled seed spread."""

from __future__ import annotations

import math

import pytest


def _run(fid: float, n: int = 6, psnr: float = 14.0, ssim: float = 0.3, **extra) -> dict:
    return {
        "N": n,
        "n_reference": 4,
        "fid": fid,
        "kid": {"mean": fid / 1000, "std": 0.0, "subset_size": n},
        "oracle": {"psnr": psnr, "ssim": ssim, "lpips": "unavailable", "n": n},
        "lpips_diversity": "unavailable",
        "content_lpips": "unavailable",
        **extra,
    }


def _metric(name: str):
    from svdinst.evaluation.verdict import METRICS

    return next(m for m in METRICS if m.name == name)


def test_within_noise_gap_is_inconclusive_and_beyond_is_judged_with_sign() -> None:
    from svdinst.evaluation.verdict import compare

    results = {
        "svd-inst": [_run(100.0), _run(110.0), _run(120.0)],  # std 10
        "inst": [_run(105.0), _run(115.0), _run(125.0)],  # 5 worse: inside 2σ = 20
        "svdiff": [_run(150.0), _run(160.0), _run(170.0)],  # 50 worse: beyond
        "base": [_run(50.0), _run(60.0), _run(70.0)],  # 50 better: svd-inst is worse
    }
    fid = _metric("FID")
    c = compare(results, "svd-inst", "inst", fid)
    assert c.status == "inconclusive" and c.gap == pytest.approx(5.0) and c.spread == 10.0
    assert compare(results, "svd-inst", "svdiff", fid).status == "better"
    worse = compare(results, "svd-inst", "base", fid)
    assert worse.status == "worse" and worse.gap == pytest.approx(-50.0)
    assert worse.sigmas == pytest.approx(-5.0)
    # higher-is-better metrics flip the sign
    up = {"svd-inst": [_run(1, psnr=p) for p in (14.0, 14.1, 14.2)],
          "inst": [_run(1, psnr=p) for p in (13.0, 13.1, 13.2)]}  # fmt: skip
    assert compare(up, "svd-inst", "inst", _metric("PSNR to oracle")).status == "better"


def test_unequal_n_is_never_compared() -> None:
    from svdinst.evaluation.verdict import best_rows, compare, verdict_block

    results = {
        "svd-inst": [_run(500.0, n=6), _run(510.0, n=6), _run(505.0, n=6)],
        "magenta": [_run(100.0, n=3, psnr=30.0)],
    }
    c = compare(results, "svd-inst", "magenta", _metric("FID"))
    assert c.status == "unequal N" and "N = 6 vs 3" in c.cell() and math.isnan(c.gap)
    lines = verdict_block(results, labels={"magenta": "Magenta"})
    text = "\n".join(lines)
    assert "Not compared (unequal N): Magenta (N = 3) against N = 6" in text
    assert "better" not in text.replace("better (+)", "")  # no judgement across N
    assert set(best_rows(results)) == {3, 6}  # best rows are found per N, never across


def test_no_seed_spread_is_unjudged() -> None:
    from svdinst.evaluation.verdict import compare, summary_sentence

    results = {"svd-inst": [_run(100.0, n=3)], "cyclegan": [_run(400.0, n=3)]}
    c = compare(results, "svd-inst", "cyclegan", _metric("FID"))
    assert c.status == "unjudged" and c.gap == pytest.approx(300.0)
    assert "no seed spread" in summary_sentence(results, "svd-inst", "cyclegan", {})
    # one side's spread is enough to judge
    results["svd-inst"] = [_run(100.0, n=3), _run(110.0, n=3)]
    assert compare(results, "svd-inst", "cyclegan", _metric("FID")).status == "better"


def test_verdict_names_untrained_winners_and_best_rows() -> None:
    from svdinst.evaluation.verdict import untrained_wins, verdict_block

    results = {
        "svd-inst": [_run(400.0, n=24, psnr=14.0), _run(410.0, n=24, psnr=14.1),
                     _run(420.0, n=24, psnr=14.2)],
        "inst": [_run(424.0, n=24, psnr=13.6), _run(425.0, n=24, psnr=13.7),
                 _run(423.0, n=24, psnr=13.5)],
        "base": [_run(424.5, n=24, psnr=14.41)],
    }  # fmt: skip
    wins = untrained_wins(results, ["base"], {"base": "base", "svd-inst": "SVD-InST"})
    assert wins == [
        "- base, with no training, beats SVD-InST on PSNR to oracle; inst on PSNR to oracle "
        "beyond the seed noise."
    ]
    text = "\n".join(verdict_block(results, labels={}, untrained=["base"],
                                   budgets={"base": "untrained"}))  # fmt: skip
    assert "PSNR to oracle: base (untrained);" in text  # the budget says it: no second mark
    assert "FID: svd-inst" in text
    # FID gap 14 vs 2 × pooled std √((10² + 1²)/2) = 14.2: inside the noise; PSNR beyond it
    assert "svd-inst vs inst (N = 24): **better** beyond the seed noise on PSNR to oracle" in text
    assert "within the seed noise (inconclusive) on FID, KID" in text
    assert "| inst | 24 |" in text and "| base | 24 |" in text


def test_table_has_one_block_per_n_with_budgets() -> None:
    from svdinst.evaluation.tables import table_markdown

    results = {
        "svd-inst": [_run(100.0, train_steps=150, backbone="diffusion model `pocket`")] * 3,
        "svd-inst@seed0": [_run(90.0, n=3, train_steps=150)] * 3,
        "cyclegan": [_run(170.0, n=3, train_steps=2, backbone="none (GAN trained from scratch)")],
        "magenta": [_run(80.0, n=3, train_steps=0, backbone="pretrained")],
        "ref:photos": [_run(60.0, n=3, reference=True)],
    }
    table = table_markdown(results)
    blocks = table.split("**N = ")
    assert len(blocks) == 3 and blocks[1].startswith("6**") and blocks[2].startswith("3**")
    assert "SVD-InST |" in blocks[1] and "CycleGAN" not in blocks[1]
    assert "SVD-InST (seed 0 only)" in blocks[2] and "CycleGAN" in blocks[2]
    assert "Magenta — **untrained** | — |" in blocks[2] and "0 (untrained)" in blocks[2]
    assert "*reference: the test photos themselves*" in blocks[2]
    assert "LPIPS unavailable" in blocks[1] and "LPIPS diversity" not in table
    svd = next(line for line in blocks[1].splitlines() if line.startswith("| SVD-InST |"))
    assert svd.split(" | ")[1:3] == ["3", "100.0 ± 0.0"]


def test_beyond_noise_is_the_one_two_spread_rule() -> None:
    from svdinst.evaluation.verdict import NOISE_MULTIPLE, beyond_noise, pooled_std

    assert NOISE_MULTIPLE == 2.0
    assert beyond_noise(2.01, 1.0) and not beyond_noise(2.0, 1.0) and not beyond_noise(-3.0, 1.0)
    assert not beyond_noise(1e9, float("nan"))  # one seed: no spread, never "beyond" it
    assert pooled_std([1.0, 3.0]) == pytest.approx(2**0.5) and math.isnan(pooled_std([1.0]))
