"""The graph step (svdinst.training.graphed): the static-buffer step the CUDA graph captures, run
without capture on the CPU, against the eager loop — losses, learned state, resume across modes.

Tolerance: exact equality. On one CPU thread the static step runs the very same ops in the same
order on the same values as the eager loop (the batch is drawn by the same generator calls; the
forced spectral refresh at the start of a step computes the W that the eager loop's refresh after
the previous optimizer step computed; the gradient is this step's alone in both), so any
difference would be a real divergence, not rounding. On CUDA the benchmark compares the captured
step with eager within a stated tolerance (kernel choice may differ under capture).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from svdinst.training.config import TrainConfig, TrainConfigError
from svdinst.training.graphed import StaticStep, resolve_step_mode
from svdinst.training.loop import train
from svdinst.training.memory import use_gradient_checkpointing

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
FAST = {"resolution": 32, "crop_pool": 4, "progress": False, "warmup_steps": 5, "lr": 1e-2}


def _config(tmp_path, style_image, tiny_model_dir, mode, step_mode, name, **kw) -> TrainConfig:
    return TrainConfig(model=str(tiny_model_dir), style=[str(style_image)], mode=mode,
                       out=str(tmp_path / name), step_mode=step_mode, **{**FAST, **kw})  # fmt: skip


def _learned(run: Path) -> dict[str, torch.Tensor]:
    tensors = {}
    for path in sorted(run.glob("*.safetensors")):
        tensors.update({f"{path.name}:{k}": v for k, v in load_file(path).items()})
    return tensors


@pytest.mark.parametrize(
    ("mode", "fast"), [("inst", None), ("svdiff", True), ("svd-inst", True), ("svd-inst", False)]
)
def test_static_step_reproduces_the_eager_loop(mode, fast, tmp_path, style_image, tiny_model_dir):
    """20 steps: the same losses and the same learned files, bit for bit (see module docstring).
    ``fast=True`` runs the spectral fast path, whose forced refresh sits inside the step."""
    results = {}
    for step_mode in ("eager", "graph"):
        cfg = _config(tmp_path, style_image, tiny_model_dir, mode, step_mode, step_mode,
                      steps=20, fast_shifts=fast)  # fmt: skip
        results[step_mode] = train(cfg)
    eager, static = results["eager"], results["graph"]
    assert (eager.step_mode, static.step_mode) == ("eager", "static")  # no capture on a CPU
    assert len(static.losses) == 20 and static.losses == eager.losses
    assert len(set(static.losses)) > 10  # the batches differ step to step: a real comparison
    a, b = _learned(eager.run_dir), _learned(static.run_dir)
    assert a.keys() == b.keys() and a
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _log_losses(run: Path) -> list[float]:
    with (run / "log.csv").open() as fh:
        return [float(r["loss"]) for r in csv.DictReader(fh)]


@pytest.mark.parametrize(
    ("first", "then"), [("graph", "graph"), ("eager", "graph"), ("graph", "eager")]
)
def test_resume_moves_between_eager_and_graph_steps(first, then, tmp_path, style_image,
                                                    tiny_model_dir):  # fmt: skip
    """10 steps in one mode, --resume to 20 in another: the uninterrupted eager run's curve."""
    full = train(_config(tmp_path, style_image, tiny_model_dir, "svd-inst", "eager", "full",
                         steps=20, fast_shifts=True))  # fmt: skip
    part = _config(tmp_path, style_image, tiny_model_dir, "svd-inst", first, "part",
                   steps=10, fast_shifts=True)  # fmt: skip
    train(part)
    resumed = _config(tmp_path, style_image, tiny_model_dir, "svd-inst", then, "part",
                      steps=20, fast_shifts=True)  # fmt: skip
    tail = train(resumed, resume=True)
    assert tail.losses == full.losses[10:]
    assert _log_losses(tmp_path / "part") == _log_losses(full.run_dir)  # one log, both modes


def test_step_mode_resolution():
    assert resolve_step_mode("auto", True, 1, False)[0] == "graph"
    assert resolve_step_mode("auto", False, 1, False)[0] == "eager"  # no CUDA: plain autograd
    assert resolve_step_mode("graph", False, 1, False)[0] == "graph"  # the CPU test path
    assert resolve_step_mode("auto", True, 2, False) == ("eager", "--grad-accum 2")
    assert resolve_step_mode("auto", True, 1, True) == ("eager", "gradient checkpointing")
    assert resolve_step_mode("eager", True, 1, False)[0] == "eager"
    with pytest.raises(TrainConfigError, match="--step-mode graph cannot run with --grad-accum"):
        resolve_step_mode("graph", True, 4, False)
    with pytest.raises(TrainConfigError, match="step_mode"):
        TrainConfig(model="tiny", style=["x.png"], out="o", step_mode="fast")


def test_channels_last_default_follows_the_step():
    from svdinst.training.graphed import use_channels_last

    assert use_channels_last(None, "graph", cuda=True)  # the big-card path: measured faster
    assert not use_channels_last(None, "eager", cuda=True)  # a T4 (checkpointing): no Vᵀ copies
    assert not use_channels_last(None, "graph", cuda=False)  # the CPU's uncaptured static step
    assert use_channels_last(True, "eager", cuda=False)
    assert not use_channels_last(False, "graph", cuda=True)


def test_checkpointing_default_follows_the_card():
    """A T4 recomputes (SD-1.4 fits), an 80 GB card takes the graph step; explicit wins."""
    assert use_gradient_checkpointing(None, "cuda", 15.0)
    assert not use_gradient_checkpointing(None, "cuda", 79.6)
    assert use_gradient_checkpointing(None, "cuda")  # unknown card: the safe choice
    assert not use_gradient_checkpointing(None, "cpu")
    assert use_gradient_checkpointing(True, "cuda", 79.6)


def test_gradients_are_averaged_over_processes(tmp_path):
    """The flat all-reduce puts every gradient back in its own place (one gloo process; the
    divisor set to 2 so that a misplaced slice would show)."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        params = [torch.nn.Parameter(torch.zeros(3, 2)), torch.nn.Parameter(torch.zeros(5))]
        grads = [torch.arange(6.0).view(3, 2), torch.arange(6.0, 11.0)]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        step = StaticStep(torch.nn.Identity(), lambda loss: None, params, torch.zeros(1), None,
                          capture=False, world=2)  # fmt: skip
        step._average_gradients()
        for p, g in zip(params, grads):
            assert torch.equal(p.grad, g / 2)
    finally:
        dist.destroy_process_group()


WORKER = """
import json, sys, torch
from accelerate import PartialState
from svdinst.training.config import TrainConfig
from svdinst.training.loop import train

state = PartialState(cpu=True)
torch.set_num_threads(1)
model, style, out = sys.argv[1:4]
losses = {}
for step_mode in ("eager", "graph"):
    cfg = TrainConfig(model=model, style=[style], out=f"{out}/{step_mode}", mode="svd-inst",
                      steps=4, resolution=32, crop_pool=4, progress=False, warmup_steps=2,
                      fast_shifts=True, lr=1e-2, batch_size=4, step_mode=step_mode)
    losses[step_mode] = train(cfg).losses
if state.is_main_process:
    print("LOSSES", json.dumps(losses))
"""


@pytest.mark.slow  # two processes through accelerate's CPU launcher (~45 s on 2 cores)
def test_two_processes_static_step_equals_ddp(tmp_path, style_image, tiny_model_dir):
    """Under `accelerate launch` (2 CPU processes, gloo) the static step's all-reduce after the
    step gives DDP's losses exactly: wrong averaging would let the processes' δ drift apart."""
    import json
    import os
    import subprocess
    import sys

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launch, str(script), str(tiny_model_dir), str(style_image),
                           str(tmp_path / "runs")], capture_output=True, text=True, env=env,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("LOSSES "))
    losses = json.loads(line.split(" ", 1)[1])
    assert len(losses["graph"]) == 4 and losses["graph"] == losses["eager"]


def test_cli_step_mode_and_channels_last_reach_the_config(monkeypatch, tmp_path, style_image):
    import svdinst.training.loop as loop
    from svdinst.cli import main

    seen = []
    monkeypatch.setattr(loop, "train", lambda config, **kw: seen.append(config) or
                        loop.TrainResult(tmp_path, [], 0, 0.0))  # fmt: skip
    argv = ["train", "--model", "tiny", "--style", str(style_image), "--mode", "svdiff"]
    argv += ["--out", str(tmp_path / "r")]
    assert main([*argv, "--steps", "1"]) == 0 and seen[-1].step_mode == "auto"
    assert main([*argv, "--steps", "1", "--step-mode", "eager"]) == 0
    assert seen[-1].step_mode == "eager" and seen[-1].channels_last is None  # auto
    assert main([*argv, "--steps", "1", "--channels-last"]) == 0 and seen[-1].channels_last
    assert main([*argv, "--steps", "1", "--no-channels-last"]) == 0
    assert seen[-1].channels_last is False


@pytest.mark.parametrize(
    ("mode", "path"), [("inst", None), ("svd-inst", "weight"), ("svd-inst", "factored")]
)
def test_channels_last_trains_the_same_run(
    mode, path, monkeypatch, tmp_path, style_image, tiny_model_dir
):
    """``channels_last``: the same losses as NCHW within 1e-5 relative (a convolution may sum in
    another order), with the UNet's convolutions really run in NHWC, input and weight — for
    svd-inst on both fast paths: the weight path's rebuilt W must stay NHWC every step (a W
    written back in NCHW would make cuDNN transpose it again, the cost the option removes), and
    the factored path's down-convolution must use an NHWC copy of Vᵀ (its NCHW view would
    turn the activations back to NCHW). The 64-px tiny UNet takes the factored path everywhere
    on its own; ``path="weight"`` holds it on the weight path."""
    import svdinst.spectral.fast as fast

    conv, seen = torch.nn.functional.conv2d, []

    def is_nhwc(t: torch.Tensor) -> bool:
        return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()

    def spy_conv(x, weight, *args, **kwargs):
        # The UNet's 3×3 convs but conv_in (it reads the NCHW latents), on maps of at least 4×4:
        # the tiny UNet goes down to 1×1, which is both layouts, and upsampling that is NCHW.
        if weight.shape[-1] > 1 and weight.shape[1] > 4 and x.shape[-1] >= 4 and x.shape[0] == 1:
            seen.append((is_nhwc(weight), is_nhwc(x)))
        return conv(x, weight, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "conv2d", spy_conv)  # batch 1: not the VAE's 4 crops
    if path == "weight":
        monkeypatch.setattr(fast, "prefers_factored", lambda layer, x: False)
    runs = {}
    for nhwc in (False, True):
        seen.clear()
        cfg = _config(tmp_path, style_image, tiny_model_dir, mode, "graph", f"cl{nhwc}",
                      steps=6, fast_shifts=True, channels_last=nhwc, resolution=64)  # fmt: skip
        runs[nhwc] = train(cfg).losses
        # (NCHW runs may see an NHWC-strided input: diffusers' attention output is a permute.)
        assert len(seen) > 6 * 10 and all(w == nhwc and (x or not nhwc) for w, x in seen), seen
    assert runs[True] == pytest.approx(runs[False], rel=1e-5)


@pytest.mark.parametrize("factored", ["never", "always"])
def test_static_step_rebuilds_spectral_weights_without_version_counters(factored):
    """A replay runs no Python, so δ's version counter (the fast path's "W is fresh" key) never
    moves between replays: the step must rebuild W (or σ') itself. δ is changed through
    ``.data``, which no version counter sees, as between two replays; the step's loss must
    follow the new δ (and not be the stale one)."""

    import torch.nn.functional as F

    from svdinst.spectral import SpectralShiftConfig, add_spectral_shifts, refresh_spectral_weights

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 8))
    cfg = SpectralShiftConfig(fast=True, rebuild="step", factored=factored)
    add_spectral_shifts(net, config=cfg)

    class Objective(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x, target, timesteps, ids, features):
            return F.mse_loss(self.net(x), target), None

    objective = Objective()
    params = [p for p in objective.parameters() if p.requires_grad]
    step = StaticStep(objective, lambda loss: loss.backward(), params, torch.zeros(1), net,
                      capture=False)  # fmt: skip
    x, target, t = torch.randn(4, 8), torch.randn(4, 8), torch.zeros(4)
    first = float(step(x, target, t, None)[0])
    versions = [p._version for p in params]
    for p in params:
        p.data.add_(0.3)
    assert [p._version for p in params] == versions  # invisible to the fast path's key
    moved = float(step(x, target, t, None)[0])
    refresh_spectral_weights(net)
    with torch.no_grad():
        expected = float(F.mse_loss(net(x), target))
    assert moved == pytest.approx(expected, rel=1e-6) and abs(moved - first) > 1e-3


def test_train_loop_benchmark_smoke(tmp_path):
    """benchmarks/train_loop.py --smoke: all six runs go through train(), eager and static agree
    exactly on a CPU, and it writes its own report section."""
    import importlib.util

    path = Path(__file__).parents[2] / "benchmarks" / "train_loop.py"
    spec = importlib.util.spec_from_file_location("train_loop_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = tmp_path / "benchmarks.md"
    bench.main(["--smoke", "--steps", "4", "--work", str(tmp_path), "--write-report",
                "--report", str(report)])  # fmt: skip
    text = report.read_text()
    assert text.count("<!-- train_loop/modes-smoke:begin -->") == 1
    for mode in ("inst", "svdiff", "svd-inst"):
        assert f"| {mode} | eager | eager |" in text and f"| {mode} | graph | static |" in text
    assert "0.0e+00 |" in text and "| graph losses within 0.005 of eager | yes |" in text
