"""Report: Table I cells (mean ± std over training seeds), footprints, Fig. 3, REPORT.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


def _metrics(fid: float, lpips: float | str = "unavailable", n: int = 30) -> dict:
    return {
        "N": n,
        "n_reference": 8,
        "fid": fid,
        "kid": {"mean": fid / 1000, "std": 0.001, "subset_size": 8},
        "lpips_diversity": lpips,
        "content_lpips": lpips,
        "artfid": "unavailable" if isinstance(lpips, str) else (1 + lpips) * (1 + fid),
        "lpips_backbone": "unavailable",
        "oracle": {"psnr": 12.0, "ssim": 0.25, "lpips": "unavailable", "n": n},
    }


def _outputs(root: Path, method: str, stems: list[str], seeds: int) -> None:
    for stem in stems:
        (root / method / stem).mkdir(parents=True)
        for k in range(seeds):
            arr = np.full((16, 16, 3), 40 * k, dtype=np.uint8)
            Image.fromarray(arr).save(root / method / stem / f"seed-{k}.png")


def test_method_folders_group_training_seeds_in_table_order(tmp_path: Path) -> None:
    from svdinst.evaluation.report import method_folders

    for name in ("cyclegan", "svd-inst-seed0", "svd-inst-seed1", "inst"):
        _outputs(tmp_path, name, ["a"], 1)
    (tmp_path / "empty").mkdir()
    groups = method_folders(tmp_path)
    assert list(groups) == ["svd-inst", "inst", "cyclegan"]
    assert [p.name for p in groups["svd-inst"]] == ["svd-inst-seed0", "svd-inst-seed1"]


def test_table_reports_mean_and_sample_std_over_seeds() -> None:
    from svdinst.evaluation.report import original_markdown, table_markdown

    results = {
        "svd-inst": [_metrics(100.0, 0.5), _metrics(110.0, 0.6), _metrics(120.0, 0.7)],
        "cyclegan": [_metrics(170.0)],
    }
    table = table_markdown(results)
    assert table.startswith("**N = 30** generated images per row:")
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()[4:]}
    head = table.splitlines()[2].split(" | ")
    svd = rows["SVD-InST"].split(" | ")
    assert svd[1] == "3"
    assert svd[head.index("FID ↓")] == "110.0 ± 10.0"  # sample std of 100, 110, 120
    assert svd[head.index("LPIPS diversity ↑")] == "0.600 ± 0.100"
    cyc = rows["CycleGAN"].split(" | ")
    assert cyc[head.index("FID ↓")] == "170.0" and cyc[head.index("LPIPS diversity ↑")] == "n/a"
    original = original_markdown(results)
    assert "| SVD-InST | 125.1 | 0.54 |" in original and "| CycleGAN | 178.3 | — |" in original


def test_footprint_counts_trained_tensors_and_bytes(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from svdinst.evaluation.report import footprint

    save_file(
        {"a": torch.zeros(3, 4), "b": torch.zeros(5)}, tmp_path / "image_to_token.safetensors"
    )
    save_file({"l1": torch.zeros(7)}, tmp_path / "spectral_shifts.safetensors")
    save_file({"<mural>": torch.zeros(64)}, tmp_path / "learned_embeds.safetensors")
    fp = footprint(tmp_path)
    assert fp["trainable_params"] == 12 + 5 + 7  # the token vector is derived, not trained
    assert fp["checkpoint_bytes"] == sum(p.stat().st_size for p in tmp_path.iterdir())
    assert footprint(tmp_path / "missing") == {"trainable_params": None, "checkpoint_bytes": None}


def test_figure_and_report(tmp_path: Path, monkeypatch) -> None:
    import svdinst.evaluation.figure3 as figure3
    import svdinst.evaluation.report as report_module
    from svdinst.course.profiles import get_profile
    from svdinst.evaluation.report import comparison_figure, write_report
    from svdinst.figures import figure_caption, save_figure

    content = tmp_path / "content"
    content.mkdir()
    for stem in ("a", "b"):
        Image.fromarray(np.zeros((20, 24, 3), dtype=np.uint8)).save(content / f"{stem}.png")
    _outputs(tmp_path / "outputs", "svd-inst", ["a", "b"], 2)
    _outputs(tmp_path / "outputs", "cyclegan", ["a", "b"], 1)
    scans = []
    for module in (figure3, report_module):  # count the scans of the outputs folder
        scan = module.outputs_method_folders
        monkeypatch.setattr(module, "outputs_method_folders",
                            lambda d, scan=scan: scans.append(d) or scan(d))  # fmt: skip
    fig = comparison_figure(tmp_path / "outputs", content, photos=2, oracle=True, resolution=16)
    assert scans == [tmp_path / "outputs"]  # once, in table order, not again for the figure
    tiles = [ax for ax in fig.axes if ax.images]
    assert len(tiles) == 2 * 3 + 2 * 3  # 2 panels × rows × (photo, oracle, its method)
    titles = [ax.get_title() for ax in tiles if ax.get_title()]
    assert titles == ["test photo", "mural proxy (oracle)", "SVD-InST"] * 1 + [
        "test photo", "mural proxy (oracle)", "CycleGAN"
    ]  # fmt: skip
    panels = [sub._suptitle.get_text() for sub in fig.subfigs]
    assert panels == ["Diffusion methods (trained here)", "Baselines"]
    # seed 0 of both methods is all zeros: black, flagged on the tile and in the caption
    assert "black: SVD-InST / a, SVD-InST / b, CycleGAN / a, CycleGAN / b" in figure_caption(fig)
    png = save_figure(fig, "07_fig3_comparison", tmp_path / "reports" / "figures", close=True)
    results = {"svd-inst": [_metrics(100.0)], "cyclegan": [_metrics(170.0)]}
    report = write_report(
        tmp_path / "reports" / "REPORT.md", results, profile=get_profile("tiny", verbose=False),
        figure=png,
    )  # fmt: skip
    text = report.read_text()
    assert "profile **tiny**" in text and "say nothing about quality" in text
    assert "](figures/07_fig3_comparison.png)" in text
    assert "Training seeds per method: 1" in text and "SSIM to oracle" in text
    verdict = text.split("## Verdict")[1].split("\n## Table I")[0]
    assert "SVD-InST vs CycleGAN (N = 30): no seed spread to judge" in verdict
    assert "## Limitations" in text
    with pytest.raises(Exception, match="stargan"):
        comparison_figure(tmp_path / "outputs", content, methods=["stargan"])
