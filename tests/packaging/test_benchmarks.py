"""The benchmark scripts' shared report writer, and the baselines benchmark in --small mode."""

from __future__ import annotations

from pathlib import Path

from report_md import write_block


def test_write_block_keeps_other_sections_and_replaces_its_own(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"
    report.write_text("# Benchmarks\n\nhand-written intro\n")
    write_block(report, "demo", "Demo", "first", "a")
    write_block(report, "demo", "Demo", "second", "b")
    write_block(report, "other", "Other", "kept")
    write_block(report, "demo", "Demo", "first again", "a")
    text = report.read_text()
    assert "hand-written intro" in text and "kept" in text
    assert text.count("## Demo") == 1 and text.count("<!-- demo:begin -->") == 1
    assert "first again" in text and "first\n" not in text and "second" in text
    assert text.index("first again") < text.index("second") < text.index("kept")


def test_baselines_throughput_small(tmp_path: Path) -> None:
    import baselines_throughput

    report = tmp_path / "benchmarks.md"
    argv = ["--small", "--methods", "cyclegan", "magenta", "--steps", "1", "--warmup", "0"]
    assert baselines_throughput.main([*argv, "--write-report", "--report", str(report)]) == 0
    text = report.read_text()
    assert "<!-- baselines_throughput/small:begin -->" in text
    assert "| cyclegan |" in text and "| magenta |" in text


def test_baselines_throughput_profile_writes_the_estimates_unit(tmp_path: Path) -> None:
    """`--profile` trains at notebook 06's batches and writes the per-step unit that
    `full_estimate.py` reads: training steps summed, stylizing 711 photos spread over the steps."""
    import json

    import baselines_throughput

    results = tmp_path / "baselines.json"
    argv = ["--small", "--methods", "stargan", "magenta", "--steps", "1", "--profile", "sd14"]
    assert baselines_throughput.main([*argv, "--results", str(results)]) == 0
    data = json.loads(results.read_text())
    assert data["profile"] == "sd14" and data["s_per_step"]["magenta"] is None
    expected = (
        data["s_per_step"]["stargan"]
        + (711 / data["images_per_s"]["stargan"] + 711 / data["images_per_s"]["magenta"]) / 1000
    )
    assert abs(data["s_per_step_all_six"] - expected) < 1e-12


def test_all_six_seconds_adds_training_and_spread_stylizing() -> None:
    from baselines_throughput import all_six_seconds

    per_step = {"a": 0.5, "b": None, "c": 0.25}
    assert all_six_seconds(per_step, {"a": 10.0, "b": 2.0, "c": 5.0}, 100, 50) == 0.75 + 1.6


def test_stylize_flops_counts_sd14_on_meta_tensors() -> None:
    """The floor behind the 0.15 s/image reading in reports/benchmarks.md: SD-1.4's CFG UNet call
    at 64×64 latents is ~1.6 TFLOP (2 × ~0.8, the usual per-image figure) — a wrong layout or a
    counter that missed attention would be far off."""
    import stylize_flops

    f = stylize_flops.pipeline_flops()
    assert 1.4 < f["unet_cfg"] < 1.8
    assert 0.5 < f["vae_encode"] < f["vae_decode"] < 4.0


def test_pocket_ceiling_finetunes_every_unet_weight(tmp_path: Path) -> None:
    """The ceiling run trains the whole UNet with the kit's crops and loss and saves a model
    folder the Stylizer can load: the UNet differs from the base model's, the rest is the same."""
    import pocket_ceiling
    import torch

    from svdinst.course.context import CourseContext
    from svdinst.course.profiles import get_profile
    from svdinst.data.default import ensure_dataset
    from svdinst.models.loading import load_components

    ctx = CourseContext(get_profile("tiny", verbose=False), tmp_path / "work", "cpu")
    ensure_dataset(ctx.data_dir)
    out = tmp_path / "ceiling"
    folder, seconds, losses = pocket_ceiling.finetune_unet(ctx, 3, 1e-2, out)
    assert folder == out and seconds > 0 and len(losses) == 3
    assert all(torch.isfinite(torch.tensor(losses)))
    base = load_components("tiny", ["unet", "vae"])
    tuned = load_components(str(out), ["unet", "vae"])
    changed = [n for n, p in tuned.unet.named_parameters()
               if not torch.equal(p, dict(base.unet.named_parameters())[n])]  # fmt: skip
    assert len(changed) == len(list(base.unet.parameters()))  # every weight moved
    for (n, p), q in zip(base.vae.named_parameters(), tuned.vae.parameters(), strict=True):
        assert torch.equal(p, q), n


def test_train_profile_idle_gaps_sums_short_gaps_by_the_next_kernel() -> None:
    """The idle-gap diagnostic of reports/benchmarks.md: gaps between consecutive device events,
    overlaps and waits of ≥ 1 ms left out, annotations (ProfilerStep, user spans) ignored."""
    from types import SimpleNamespace

    import train_profile
    from torch.autograd import DeviceType

    def event(name: str, start: float, end: float) -> SimpleNamespace:
        span = SimpleNamespace(start=start, end=end)
        return SimpleNamespace(name=name, time_range=span, device_type=DeviceType.CUDA)

    events = [event("gemm", 0, 10), event("norm", 13, 20), event("Memset (Device)", 26, 27),
              event("norm", 25, 40), event("gemm", 2040, 2050),
              event("ProfilerStep#3", 0, 3000), event("Optimizer.step#AdamW.step", 30, 31)]  # fmt: skip
    gaps = train_profile.idle_gaps(SimpleNamespace(events=lambda: events))
    steps = train_profile.HOST_STEPS
    # Idle: 10 → 13 before "norm" (3 µs) and 20 → 25 before "norm" (5 µs). The memset runs inside
    # the second norm (no gap; the device stays busy until 40), and 40 → 2040 is a host wait.
    assert abs(gaps["idle_ms"] * steps - 8e-3) < 1e-12
    assert gaps["before"][0][0] == "norm" and abs(gaps["before"][0][1] * steps - 8e-3) < 1e-12
    assert gaps["hist"] == {"< 5 µs": 1 / steps, "< 10 µs": 1 / steps}


def test_stylize_split_times_the_vae_inside_a_batch() -> None:
    """The split's VAE columns come from the pipeline's own encode/decode calls: both were
    called (positive time) and, with the rest, add up to the batch."""
    import stylize_split

    text = stylize_split.main(["--smoke"])
    rows = [line for line in text.splitlines() if line.startswith("| kit")]
    assert len(rows) == 2 and "every pair" in rows[0] and "once" in rows[1]
    for row in rows:
        total, encode, decode, rest = (float(c) for c in row.split("|")[3:7])
        assert encode > 0 and decode > 0 and rest > 0
        assert abs(encode + decode + rest - total) < 0.2  # each rounded to 0.1 ms


def test_aside_exact_small_compares_against_the_plain_backward() -> None:
    """The GPU check's --small run (in line, no streams): each row compares with the plain
    backward's δ gradients, and on a CPU they are the same bits."""
    import aside_exact

    text = aside_exact.main(["--small"])
    rows = [line for line in text.splitlines() if line.startswith("| plain") or "aside" in line]
    assert [r.split("|")[1].strip().split(",")[0] for r in rows] == ["plain", "aside"]
    assert all(r.split("|")[2].strip() == "yes" for r in rows)


def test_train_profile_census_diff_lists_both_directions() -> None:
    """The kernel census between two split rows names kernels run more often *and* less often,
    with the net change, so a launch removed by a change cannot hide behind one it adds."""
    import train_profile

    def row(census: dict) -> dict:
        return {"host": {"census": census}}

    splits = {"inst": row({"gemm": 10, "mul": 5}), "svd-inst": row({"gemm": 14, "copy": 2})}
    text = train_profile.census_diff(splits)
    assert "(net +1)" in text
    assert "more often: `gemm` +4; `copy` +2." in text
    assert "Less often: `mul` -5" in text
