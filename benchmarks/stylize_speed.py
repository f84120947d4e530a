"""Stylizing speed and memory: stock diffusers img2img vs the kit's Stylizer, side by side.

On the ``sd14-random`` model (SD-1.4's exact shapes, random weights: shapes set the cost), in
ONE process on one card, at 512 px, 50 DDIM steps, strength 0.8, CFG 7.5, fp16:

1. **UNet forward, merged vs vanilla** (batch 1, fp32 + TF32, 64×64 latents): the plain UNet;
   the same UNet with spectral shifts merged but the wrappers and their pre-hook kept
   (``merge_spectral_shifts``); merged again after a few fast-path training steps with bf16
   factors (the state ``spectral_step.py``'s "infer-merged" row timed, less its CUDA graphs);
   and the Stylizer's way, wrappers removed (``remove_spectral_shifts``, a plain diffusers UNet
   again), with checks that no factor stays on the GPU and every weight is contiguous.
2. **Stock vs kit at the same batches**: ``StableDiffusionImg2ImgPipeline.from_pretrained`` vs
   ``Stylizer(run=<svd-inst run, 2 training steps so every δ moved>)``: s/img and peak
   allocated/reserved GiB, ratios, and the per-image memory slope behind ``batch_size="auto"``.
3. **The kit beyond stock**: the auto batch with channels-last + fused qkv, then also
   ``torch.compile`` (UNet and VAE, as ``SpeedOptions.compile``) in each of
   ``--compile-modes`` (default: the kit's, ``"default"``; its compile time reported apart).

    python benchmarks/stylize_speed.py --write-report   # CUDA: ~4-5 min on an H100/H200
    python benchmarks/stylize_speed.py --write-report --no-compile   # ~2 min less
    python benchmarks/stylize_speed.py --smoke          # CPU, tiny model, seconds

``--write-report`` replaces this script's section of ``reports/benchmarks.md``; a CUDA run always
writes ``benchmarks/results/stylize_speed.json`` (best s/img and its batch, stock's at batch 4).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from report_md import REPORT, write_block

HEADING = "Stylize: the kit vs stock diffusers img2img (benchmarks/stylize_speed.py)"
ROOT = Path(__file__).resolve().parents[1]
GiB = 2**30


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def free_cuda() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def photo(k: int, size: int) -> Image.Image:
    """A deterministic structured photo (bands and stripes); content does not change the cost."""
    y, x = np.mgrid[0:size, 0:size]
    img = np.stack([(x * (0.5 + k / 10)) % 256, (y * 1.1) % 256, ((x + y) // 40 % 2) * 200 + 30])
    return Image.fromarray(img.transpose(1, 2, 0).astype(np.uint8))


def make_run(model: str, work: Path, resolution: int) -> Path:
    """A real svd-inst run folder: 2 training steps (AdamW moves every δ by ~lr)."""
    from svdinst.training.config import TrainConfig
    from svdinst.training.loop import train

    photo(0, 2 * resolution).save(work / "style.png")
    out = work / "run"
    cfg = TrainConfig(
        model=model, style=[str(work / "style.png")], out=str(out), mode="svd-inst", steps=2,
        resolution=resolution, crop_pool=1, progress=False, lr=1e-3, warmup_steps=0,
    )  # fmt: skip
    train(cfg, overwrite=True)
    free_cuda()
    return out


def timed_calls(fn, repeats: int, warmup: int = 1) -> tuple[float, float, float]:
    """(median s per call, peak allocated GiB, peak reserved GiB) of ``fn`` after warm-up."""
    for _ in range(warmup):
        fn()
    sync()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated() / GiB, torch.cuda.max_memory_reserved() / GiB
    else:
        peak = (float("nan"), float("nan"))
    return statistics.median(times), *peak


def forward_rows(model: str, run: Path, device: str, repeats: int) -> tuple[list[dict], dict]:
    """UNet forward at batch 1 (fp32, TF32): vanilla, merged with wrappers, merged plain."""
    from svdinst.models.loading import load_components
    from svdinst.spectral import (
        add_spectral_shifts,
        load_spectral_shifts,
        merge_spectral_shifts,
        remove_spectral_shifts,
        set_fast_path,
        spectral_layers,
        unmerge_spectral_shifts,
    )
    from svdinst.spectral.layer import SpectralShiftLayer

    comps = load_components(model, ["unet"], device=device, dtype=torch.float32)
    unet = comps.unet.eval()
    side = int(unet.config.sample_size)
    g = torch.Generator().manual_seed(0)
    lat = torch.randn(1, 4, side, side, generator=g).to(device)
    cond = torch.randn(1, 77, unet.config.cross_attention_dim, generator=g).to(device)
    t = torch.tensor([500], device=device)

    def fwd():
        with torch.no_grad():
            unet(lat, t, encoder_hidden_states=cond)

    def mem() -> float:
        return torch.cuda.memory_allocated() / GiB if device == "cuda" else float("nan")

    rows = []
    ms = timed_calls(fwd, repeats, warmup=3)[0] * 1e3
    rows.append({"unet": "vanilla (plain diffusers)", "ms": ms, "resident_gib": mem()})
    add_spectral_shifts(unet, base_model=comps.model_id)  # training's SVD cache file
    comps = None
    load_spectral_shifts(unet, run / "spectral_shifts.safetensors")
    merge_spectral_shifts(unet)
    ms = timed_calls(fwd, repeats, warmup=3)[0] * 1e3
    rows.append({"unet": "merged, wrappers + pre-hook kept", "ms": ms, "resident_gib": mem()})
    # spectral_step.py merged after its training rows: the fast path (bf16 factors) had run
    # forward + backward + AdamW first. The same here, without CUDA graphs.
    unmerge_spectral_shifts(unet)
    set_fast_path(unet, True, torch.bfloat16 if device == "cuda" else None)
    deltas = [layer.delta for layer in spectral_layers(unet).values()]
    opt = torch.optim.AdamW(deltas, lr=1e-4)
    for _ in range(3):
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = unet(lat, t, encoder_hidden_states=cond).sample.float().square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    opt = loss = None
    merge_spectral_shifts(unet)
    ms = timed_calls(fwd, repeats, warmup=3)[0] * 1e3
    rows.append({"unet": "merged after fast-path steps (bf16 factors), wrappers kept", "ms": ms,
                 "resident_gib": mem()})  # fmt: skip
    remove_spectral_shifts(unet, merge=True)
    free_cuda()
    ms = timed_calls(fwd, repeats, warmup=3)[0] * 1e3
    rows.append({"unet": "merged, wrappers removed (Stylizer)", "ms": ms, "resident_gib": mem()})
    params = list(unet.parameters())
    checks = {
        "wrappers left": sum(isinstance(m, SpectralShiftLayer) for m in unet.modules()),
        "forward hooks left": len(unet._forward_pre_hooks) + len(unet._forward_hooks),
        "non-contiguous weights": sum(not p.is_contiguous() for p in params),
        "dtypes": sorted({str(p.dtype) for p in params}),
        "buffers (factors) left": sum(b.numel() for b in unet.buffers()),
    }
    return rows, checks  # the UNet goes with this frame (the caller frees the cache)


def stylize_rows(args, model: str, run: Path, device: str) -> tuple[list[dict], dict]:
    """Stock img2img vs the kit's Stylizer at each batch, then the kit's levers."""
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    from svdinst.models.loading import resolve_model
    from svdinst.stylize.config import StylizeConfig
    from svdinst.stylize.speed import SpeedOptions, compile_pipeline
    from svdinst.stylize.stylizer import Stylizer

    dtype = torch.float16 if device == "cuda" else torch.float32
    res, steps = args.resolution, args.steps
    cfg = StylizeConfig(strength=0.8, steps=steps, guidance=7.5, resolution=res)
    photos = [photo(k, res) for k in range(4)]
    rows: list[dict] = []

    def row(name: str, batch: int, fn, load_gib: float, warmup: int = 1) -> dict:
        # A batch of 16+ images runs for seconds: one timed batch is a stable number.
        s, alloc, reserved = timed_calls(fn, args.repeats if batch < 16 or args.repeats_all else 1,
                                         warmup)  # fmt: skip
        r = {"pipeline": name, "batch": batch, "s_per_image": s / batch, "peak_alloc_gib": alloc,
             "peak_reserved_gib": reserved, "loaded_gib": load_gib}  # fmt: skip
        print(json.dumps(r), flush=True)
        rows.append(r)
        return r

    def loaded() -> float:
        return torch.cuda.memory_allocated() / GiB if device == "cuda" else float("nan")

    # Stock diffusers: the folder as from_pretrained reads it, DDIM as the kit configures it.
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
        resolve_model(model), dtype=dtype, safety_checker=None, feature_extractor=None,
        image_encoder=None, requires_safety_checker=False,
    ).to(device)  # fmt: skip
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False)
    pipe.set_progress_bar_config(disable=True)
    stock_load = loaded()
    for b in args.batches:
        x = [photos[i % len(photos)].convert("RGB") for i in range(b)]
        gens = [torch.Generator().manual_seed(i) for i in range(b)]

        def stock(x=x, gens=gens, b=b):
            pipe(prompt=["a painting"] * b, image=x, strength=0.8, num_inference_steps=steps,
                 guidance_scale=7.5, generator=gens, output_type="np")  # fmt: skip

        row("stock diffusers", b, stock, stock_load)
    pipe = None  # the stock pipeline leaves the card before the kit's loads
    free_cuda()

    def kit_rows(name: str, batches: list[int], speed: SpeedOptions) -> Stylizer:
        st = Stylizer(run=run, device=device, dtype=dtype, speed=speed)
        load = loaded()
        for b in batches:
            x = [photos[i % len(photos)] for i in range(b)]
            row(name, b, lambda x=x, b=b: st.stylize_batch(x, list(range(b)), cfg), load)
        return st

    st = kit_rows("kit Stylizer (merged svd-inst)", args.batches, SpeedOptions())
    auto = st.batch_size(StylizeConfig(resolution=res))
    st.close()
    free_cuda()

    def auto_batch(st: Stylizer):
        """One call stylizing a batch of ``auto`` photos with ``st``."""
        x = [photos[i % len(photos)] for i in range(auto)]
        return lambda: st.stylize_batch(x, list(range(auto)), cfg)

    def compiled_row(st: Stylizer, name: str, mode: str) -> float:
        """The same model compiled in place as ``SpeedOptions.compile`` does (UNet, VAE encoder
        and decoder) in ``mode``; returns the compile time (first batch less a timed one)."""
        torch._dynamo.reset()  # a fresh compile in this mode
        compile_pipeline(st.pipe, mode)
        call = auto_batch(st)
        t0 = time.perf_counter()
        call()  # compiles
        sync()
        first = time.perf_counter() - t0
        r = row(name, auto, call, loaded(), 0)
        return first - r["s_per_image"] * auto

    extra = {"auto_batch": auto}
    levers = SpeedOptions(channels_last=True, fuse_qkv=True)
    st = kit_rows("kit + channels-last + fused qkv", [auto], levers)
    for mode in args.compile_modes if args.compile else ():
        suffix = "" if mode == "default" else f" ({mode})"
        extra["compile_s" + suffix] = compiled_row(
            st, "kit + levers + torch.compile" + suffix, mode
        )
    if args.cudnn_benchmark and args.compile:  # the last compiled UNet, cuDNN autotuning its convs
        kept, torch.backends.cudnn.benchmark = torch.backends.cudnn.benchmark, True
        row("kit + levers + torch.compile + cudnn.benchmark", auto, auto_batch(st), loaded())
        torch.backends.cudnn.benchmark = kept
    st.close()
    free_cuda()
    return rows, extra


def explain_forward(fwd: list[dict]) -> str:
    """What the forward rows say about issue 15's "merged 50.8 vs vanilla 30.0 ms" row."""
    base = fwd[0]["ms"]
    ratio = {r["unet"]: r["ms"] / base for r in fwd}
    wrapped, trained, plain = (ratio[r["unet"]] for r in fwd[1:4])
    text = (f"Merged / vanilla: wrappers kept {wrapped:.2f}×, after fast-path steps {trained:.2f}×, "
            f"wrappers removed (what the Stylizer runs) {plain:.2f}×. ")  # fmt: skip
    if plain <= 1.05:
        text += "The Stylizer's merged UNet costs what vanilla costs. "
    else:
        text += ("In this run the Stylizer's merged UNet was slower than vanilla, although it "
                 "holds the same tensors (check line below); batch-1 eager forwards vary between "
                 "runs, so compare with a second run before reading a cause into it. ")  # fmt: skip
    if max(wrapped, trained) > 1.2:
        which = "wrappers and pre-hook" if wrapped > 1.2 else "state after fast-path training"
        text += (f"spectral_step.py's slow row comes from the {which}, which the Stylizer "
                 "removes (remove_spectral_shifts).")  # fmt: skip
    else:
        text += ("Neither kept wrappers nor fast-path training slow a merged UNet here, so "
                 "spectral_step.py's slow row came from its own state after its graphed "
                 "training rows, not from merging.")  # fmt: skip
    return text


def report(card: str, fwd: list[dict], checks: dict, rows: list[dict], extra: dict, args) -> str:
    when = datetime.date.today().isoformat()
    prec = "fp16" if torch.cuda.is_available() and not args.smoke else "fp32"
    lines = [f"Card: **{card}**, {when}; torch {torch.__version__}. {args.resolution} px, "
             f"{args.steps} DDIM steps, strength 0.8, CFG 7.5, {prec}, SDPA; median of "
             f"{args.repeats} timed batches"
             f"{'' if args.repeats_all else ' (1 from batch 16 up)'} after one warm-up batch.", "",
             "**UNet forward, batch 1, fp32 + TF32**", "", "| UNet | ms | resident GiB |",
             "|---|---|---|"]  # fmt: skip
    lines += [f"| {r['unet']} | {r['ms']:.1f} | {r['resident_gib']:.2f} |" for r in fwd]
    lines += ["", f"After removing the wrappers: {checks}.", "", explain_forward(fwd), ""]
    lines += ["**Stylizing, s per image and peak memory (after loading)**", "",
              "| pipeline | batch | s/img | × stock | peak alloc GiB | peak reserved GiB | "
              "× stock (reserved) | resident after load GiB |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    stock = {r["batch"]: r for r in rows if r["pipeline"] == "stock diffusers"}
    for r in rows:
        ref = stock.get(r["batch"])
        ratio = f"{r['s_per_image'] / ref['s_per_image']:.3f}" if ref else "–"
        mratio = f"{r['peak_reserved_gib'] / ref['peak_reserved_gib']:.3f}" if ref else "–"
        lines.append(f"| {r['pipeline']} | {r['batch']} | {r['s_per_image']:.3f} | {ratio} | "
                     f"{r['peak_alloc_gib']:.2f} | {r['peak_reserved_gib']:.2f} | {mratio} | "
                     f"{r['loaded_gib']:.2f} |")  # fmt: skip
    lines += ["", f'`batch_size="auto"` on this card: {extra["auto_batch"]}.']
    for name in ("stock diffusers", "kit Stylizer (merged svd-inst)"):
        pts = sorted((r["batch"], r["peak_reserved_gib"]) for r in rows if r["pipeline"] == name)
        if len(pts) >= 2:
            slope = (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])
            lines.append(f"Peak memory per image ({name}): {slope:.3f} GiB (model: 0.5 × 1.2).")
    for key, secs in extra.items():
        if key.startswith("compile_s"):
            mode = key.removeprefix("compile_s")  # "" or " (<mode>)"
            lines.append(f"torch.compile{mode}: {secs:.0f} s of compiling (first batch).")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="CPU, tiny model, seconds")
    p.add_argument("--batches", type=int, nargs="+", help="default: 4 16 (smoke: 2)")
    p.add_argument(
        "--repeats",
        type=int,
        help="timed batches per row (default 2, and 1 from batch 16 up; given: every row)",
    )
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument(
        "--compile-modes",
        nargs="+",
        default=["default"],
        help="torch.compile modes, one row each (e.g. max-autotune-no-cudagraphs)",
    )
    p.add_argument(
        "--cudnn-benchmark",
        action="store_true",
        help="one more row: the compiled UNet with torch.backends.cudnn.benchmark on",
    )
    p.add_argument("--write-report", action="store_true")
    p.add_argument("--report", type=Path, default=REPORT)
    p.add_argument(
        "--json", type=Path, default=ROOT / "benchmarks" / "results" / "stylize_speed.json"
    )
    args = p.parse_args()
    cuda = torch.cuda.is_available() and not args.smoke
    device = "cuda" if cuda else "cpu"
    model = "sd14-random" if cuda else "tiny"
    args.batches = args.batches or ([4, 16] if cuda else [2])
    args.repeats_all = args.repeats is not None
    args.repeats = args.repeats or (2 if cuda else 1)
    args.resolution, args.steps = (512, 50) if cuda else (64, 5)
    args.compile = args.compile and cuda  # compiling the tiny UNet on a CPU only costs time
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True  # the forward rows: fp32 + TF32
        torch.backends.cudnn.allow_tf32 = True
    card = torch.cuda.get_device_name() if cuda else "CPU (smoke)"
    print(f"{card}: {model}, batches {args.batches}", flush=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stylize-speed-") as work:
        run = make_run(model, Path(work), 256 if cuda else 64)
        print(f"run trained in {time.perf_counter() - t0:.0f} s", flush=True)
        fwd, checks = forward_rows(model, run, device, 10 if cuda else 2)
        free_cuda()
        for r in fwd:
            print(r, flush=True)
        print(checks, flush=True)
        rows, extra = stylize_rows(args, model, run, device)
    text = report(card, fwd, checks, rows, extra, args)
    print(text)
    print(f"total {time.perf_counter() - t0:.0f} s")
    if args.write_report and cuda:
        write_block(args.report, "stylize_speed", HEADING, text)
    if cuda:  # the flat summary other reports read
        # The kit's own paths only: the cudnn.benchmark probe is no option of svdinst stylize.
        kit = [r for r in rows if r["pipeline"].startswith("kit") and "cudnn" not in r["pipeline"]]
        best = min(kit, key=lambda r: r["s_per_image"])
        stock4 = next((r for r in rows if r["pipeline"] == "stock diffusers" and r["batch"] == 4),
                      None)  # fmt: skip
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "s_per_image_best": round(best["s_per_image"], 4), "best_batch": best["batch"],
            "best_pipeline": best["pipeline"],
            "s_per_image_stock_batch4": round(stock4["s_per_image"], 4) if stock4 else None,
            "card": card, "date": datetime.date.today().isoformat(),
        }, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
