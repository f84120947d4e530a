"""Evaluation speed: the all-in-memory path of issue 13 vs the streaming pass, on the same images.

Writes ``--photos`` × ``--seeds`` generated PNGs (``--size`` px, smooth random fields), content
photos (JPEG, 4:3, larger than the outputs: the stylizer's view is cropped from them) and a style
set to a temporary folder, then times, each in a fresh process (so peak host RSS and GPU reserved
memory belong to that path alone), after a warm-up on a two-photo folder:

* **old** — today's path before issue 15 (kept below as :func:`old_path`): Inception through
  torch-fidelity's dataset loop, then per photo LPIPS diversity, content LPIPS and the oracle
  (skimage PSNR/SSIM on the CPU), images decoded in the main process;
* **stream** — :func:`svdinst.evaluation.metrics.evaluate`, one streaming pass.

Both score every term (LPIPS with a random AlexNet trunk — ``random_backbone_for_tests``: timing
only, the device has no AlexNet weights; the mural oracle on). Reports ms per generated image,
the ratio, peak RSS, peak GPU reserved, and how far the stream's metrics are from the old path's
(relative), and writes ``benchmarks/results/eval_speed.json`` (``s_per_image_stream`` …).

    python benchmarks/eval_speed.py --smoke                 # CPU, seconds
    python benchmarks/eval_speed.py --write-report          # CUDA: 20 photos × 10 seeds, 512 px (~2.5 min)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HEADING = "Evaluation speed: streaming pass vs the all-in-memory path (benchmarks/eval_speed.py)"
RESULTS = Path(__file__).resolve().parent / "results" / "eval_speed.json"
REPEAT = 4  # the "stream ×4" row: every output folder linked under 4 stems


def write_images(root: Path, photos: int, seeds: int, size: int, styles: int) -> None:
    """The generated folder (``out``), a warm-up folder (``warm``), ``content`` and ``style``."""
    from svdinst.formats.outputs import OutputsFolder

    rng = np.random.default_rng(0)

    def field(w: int, h: int) -> Image.Image:  # smooth colour field + fine noise: PNGs of real size
        small = rng.integers(0, 255, size=(6, 8, 3)).astype(np.uint8)
        base = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC), dtype=np.int16)
        noise = rng.integers(-12, 12, size=base.shape)
        return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))

    (root / "content").mkdir(parents=True)
    (root / "style").mkdir()
    for k in range(photos):
        field(size * 3 // 2, size * 9 // 8).save(root / "content" / f"p{k:03d}.jpg", quality=92)
        for s in range(seeds):
            OutputsFolder(root / "out").save_image(f"p{k:03d}", s, field(size, size))
            if k < 2:
                OutputsFolder(root / "warm").save_image(f"p{k:03d}", s, field(size, size))
    for k in range(styles):
        field(size, size).save(root / "style" / f"s{k}.png")
    for k in range(photos):  # "big": the same outputs under REPEAT stems each (links), for the
        for r in range(REPEAT):  # streaming rate once start-up (worker processes) is amortised
            (root / "big").mkdir(exist_ok=True)
            (root / "big" / f"p{k:03d}r{r}").symlink_to(root / "out" / f"p{k:03d}")
            (root / "content" / f"p{k:03d}r{r}.jpg").symlink_to(root / "content" / f"p{k:03d}.jpg")


def old_path(generated: Path, style: Path, content: Path, scorer, device: str) -> dict:
    """svdinst.evaluation.metrics.evaluate as it was before issue 15 (its metric calls, in its
    order): the reference the streaming pass is timed against."""
    from svdinst.data import list_images, load_image
    from svdinst.data.mural import mural_proxy
    from svdinst.evaluation.lpips import content_lpips, lpips_diversity
    from svdinst.evaluation.metrics import fid_kid
    from svdinst.evaluation.oracle import native_crop, oracle_distance
    from svdinst.formats.outputs import OutputsFolder

    paths = OutputsFolder(generated).collect()
    photo_files = {p.stem: p for p in list_images(content)}
    styles = [load_image(p) for p in list_images(style)]
    flat = [p for files in paths.values() for p in files]
    fk = fid_kid(flat, styles, device=device, batch_size=32)
    per_photo, content_sum, content_n, psnr, ssim = [], 0.0, 0, [], []
    for stem, files in paths.items():
        images = [load_image(p) for p in files]
        per_photo.append(lpips_diversity({stem: images}, scorer)["mean"])
        photo = load_image(photo_files[stem])
        part = content_lpips({stem: images}, {stem: photo}, scorer)
        content_sum, content_n = content_sum + part["mean"] * part["n"], content_n + part["n"]
        target = mural_proxy(native_crop(photo, images[0].size))
        o = oracle_distance({stem: images}, {stem: target}, scorer)
        psnr.append(o["psnr"])
        ssim.append(o["ssim"])
    return {"fid": fk["fid"], "kid": fk["kid_mean"], "lpips_diversity": float(np.mean(per_photo)),
            "content_lpips": content_sum / content_n, "psnr": float(np.mean(psnr)),
            "ssim": float(np.mean(ssim))}  # fmt: skip


def stream_path(generated: Path, style: Path, content: Path, scorer, device: str) -> dict:
    from svdinst.evaluation.metrics import evaluate

    m = evaluate(generated, style, content, mural_oracle=True, device=device, lpips_scorer=scorer)
    return {"fid": m["fid"], "kid": m["kid"]["mean"], "lpips_diversity": m["lpips_diversity"],
            "content_lpips": m["content_lpips"], "psnr": m["oracle"]["psnr"],
            "ssim": m["oracle"]["ssim"]}  # fmt: skip


def inception_precision(root: Path, device: str, n: int = 256, batch: int = 64) -> list[dict]:
    """Inception alone on ``n`` outputs: ms/img and feature error of each precision against
    strict fp32 (no TF32). The evaluate path keeps torch's default (fp32, cuDNN TF32 convs)."""
    from svdinst.evaluation.metrics import inception_extractor
    from svdinst.evaluation.stream import _uint8

    files = sorted((root / "out").glob("*/*.png"))[:n]
    x = torch.stack([_uint8(Image.open(f)) for f in files]).to(device)
    net = inception_extractor(device)
    variants = {
        "fp32 strict": dict(tf32=False, cl=False, half=False),
        "fp32 + TF32 (default, used)": dict(tf32=True, cl=False, half=False),
        "TF32 + channels_last": dict(tf32=True, cl=True, half=False),
        "fp16 autocast + channels_last": dict(tf32=True, cl=True, half=True),
    }
    rows, ref = [], None
    for name, v in variants.items():
        torch.backends.cudnn.allow_tf32 = v["tf32"]
        net = net.to(memory_format=torch.channels_last if v["cl"] else torch.contiguous_format)

        def run(net: torch.nn.Module, half: bool) -> torch.Tensor:
            with torch.autocast(x.device.type, torch.float16, enabled=half):
                return torch.cat([net(c)[0].float() for c in x.split(batch)])

        sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
        run(net, v["half"])
        sync()
        start = time.perf_counter()
        feats = run(net, v["half"])
        sync()
        ms = 1000 * (time.perf_counter() - start) / len(x)
        ref = feats if ref is None else ref
        err = float((feats - ref).abs().max() / ref.abs().mean())
        rows.append({"variant": name, "ms_per_image": ms, "max_rel_feature_error": err})
    torch.backends.cudnn.allow_tf32 = True
    net.to(memory_format=torch.contiguous_format)
    return rows


def child(path: str, root: Path, device: str) -> None:
    """One path in this (fresh) process: warm up on ``warm``, time ``out`` (``big`` for
    ``stream-big``); print one JSON line."""
    from svdinst.evaluation.lpips import load_lpips

    fn = old_path if path == "old" else stream_path
    scorer = load_lpips(device=device, random_backbone_for_tests=True)  # timing only
    fn(root / "warm", root / "style", root / "content", scorer, device)  # models, caches, autotune
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    folder = root / ("big" if path == "stream-big" else "out")
    metrics = fn(folder, root / "style", root / "content", scorer, device)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB → GiB
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # decoding workers
    reserved = torch.cuda.max_memory_reserved() / 2**30 if cuda else 0.0
    probe, split = [], []
    if path == "stream-big":
        split = parts(root, device)
    if path == "stream":  # a few images on a CPU (--smoke): the code runs, the numbers mean little
        probe = inception_precision(root, device, *((256, 64) if cuda else (4, 2)))
    print(json.dumps({"path": path, "seconds": seconds, "rss_gib": rss, "workers_rss_gib": kids,
                      "reserved_gib": reserved, "metrics": metrics, "inception": probe,
                      "parts": split}))  # fmt: skip


def parts(root: Path, device: str) -> list[dict]:
    """Where the streaming rate goes: the decoding workers alone (as ``stream_photos`` builds
    its loader, items discarded), then the device step alone (8 photos already on the device,
    ``_score`` repeated) with each term switched on in turn. ms per generated image."""
    from svdinst.data import list_images
    from svdinst.evaluation.lpips import load_lpips
    from svdinst.evaluation.metrics import inception_extractor
    from svdinst.evaluation.stream import PhotoGroups, _score, decoding_loader, default_workers
    from svdinst.formats.outputs import OutputsFolder

    paths = OutputsFolder(root / "big").collect()
    photos = {p.stem: p for p in list_images(root / "content")}
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    workers = default_workers(device)
    rows = []
    for oracle in (False, True):
        ds = PhotoGroups(list(paths.items()), photos, oracle=oracle)
        loader = decoding_loader(ds, workers, pin_memory=cuda)
        start, n, items = time.perf_counter(), 0, []
        for item in loader:
            n += len(item["outputs"])
            if len(items) < 8:
                items.append(item)
        ms = 1000 * (time.perf_counter() - start) / n
        rows.append({"part": f"decode only, {workers} workers" + (", + oracle target" if oracle else ""),
                     "ms_per_image": ms})  # fmt: skip
    items = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in it.items()} for it in items]
    extractor = inception_extractor(device)
    scorer = load_lpips(device=device, random_backbone_for_tests=True)
    n = sum(len(it["outputs"]) for it in items)
    variants = {
        "device step: Inception only": ([{"stem": i["stem"], "outputs": i["outputs"]} for i in items], None),
        "device step: + PSNR/SSIM (float64)": ([{k: v for k, v in i.items() if k != "photo"} for i in items], None),
        "device step: + LPIPS (all terms)": (items, scorer),
    }  # fmt: skip
    for name, (batch, sc) in variants.items():
        _score(batch, extractor, sc, True, 64)
        sync()
        start = time.perf_counter()
        for _ in range(3):
            _score(batch, extractor, sc, True, 64)
        sync()
        rows.append({"part": name, "ms_per_image": 1000 * (time.perf_counter() - start) / (3 * n)})
    return rows


def run_child(path: str, root: Path, device: str) -> dict:
    cmd = [sys.executable, __file__, "--child", path, "--root", str(root), "--device", device]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{path} path failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="CPU, 3 photos × 2 seeds at 64 px")
    p.add_argument("--photos", type=int, default=20)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--styles", type=int, default=32)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--write-report", action="store_true")
    p.add_argument("--child", choices=["old", "stream", "stream-big"], help=argparse.SUPPRESS)
    p.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.root, args.device)
        return 0
    if args.smoke:
        args.photos, args.seeds, args.size, args.styles, args.device = 3, 2, 64, 3, "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        write_images(root, args.photos, args.seeds, args.size, args.styles)
        print(f"wrote {args.photos * args.seeds} images in {time.perf_counter() - t0:.1f} s")
        old, new = run_child("old", root, args.device), run_child("stream", root, args.device)
        big = run_child("stream-big", root, args.device)
    n = args.photos * args.seeds
    big["path"] = f"stream, the same outputs ×{REPEAT} ({REPEAT * n} images)"
    card = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    drift = {k: abs(new["metrics"][k] - v) / max(abs(v), 1e-12) for k, v in old["metrics"].items()}
    text = "\n".join([
        f"Card: **{card}**; {time.strftime('%Y-%m-%d', time.gmtime())}; torch {torch.__version__}; "
        f"{args.photos} photos × {args.seeds} seeds = {n} generated PNGs at {args.size} px, "
        f"{args.styles} style images (features cached after the warm-up), content JPEGs 1.5× "
        "larger, every term on (FID/KID, LPIPS diversity + content with a random AlexNet trunk: "
        "timing only, mural oracle); each path in a fresh process after a 2-photo warm-up.",
        "",
        "| path | ms / image | peak host RSS GiB (+ workers) | peak GPU reserved GiB |",
        "|---|---|---|---|",
        *[f"| {r['path']} | {1000 * r['seconds'] / n:.1f} | {r['rss_gib']:.2f} "
          f"(+ {r['workers_rss_gib']:.2f}) | {r['reserved_gib']:.2f} |"
          for r, n in ((old, n), (new, n), (big, REPEAT * n))],
        "",
        f"Streaming is **{old['seconds'] / new['seconds']:.1f}×** faster on the same {n} images "
        f"(**{old['seconds'] / n / (big['seconds'] / (REPEAT * n)):.0f}×** per image at "
        f"{REPEAT * n}, start-up amortised; that rate is `s_per_image_stream`). Largest relative "
        f"difference of its metrics from the old path's: "
        + ", ".join(f"{k} {v:.1e}" for k, v in drift.items()) + ".",
    ])  # fmt: skip
    if new["inception"]:
        text += "\n\n" + "\n".join([
            f"Inception alone ({'256 outputs, batch 64' if card != 'cpu' else '4 outputs'}): max |Δ feature| ÷ mean |feature| against "
            "strict fp32. evaluate runs the second row (fp32 weights, TF32 convs): the old "
            "path's precision; a variant is worth adopting only if faster here and within 1e-3.",
            "",
            "| variant | ms / image | max rel. feature error |",
            "|---|---|---|",
            *[f"| {r['variant']} | {r['ms_per_image']:.3f} | {r['max_rel_feature_error']:.1e} |"
              for r in new["inception"]],
        ])  # fmt: skip
    if big["parts"]:
        text += "\n\n" + "\n".join([
            f"Where the streaming rate goes ({REPEAT * n} images; each part alone, same process "
            "as the ×4 row): the decoding workers with the items discarded, and the device step "
            "on 8 photos already on the device.",
            "",
            "| part | ms / image |",
            "|---|---|",
            *[f"| {r['part']} | {r['ms_per_image']:.2f} |" for r in big["parts"]],
        ])  # fmt: skip
    print(text)
    if not args.smoke:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({
            "card": card, "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "s_per_image_stream": big["seconds"] / (REPEAT * n),
            "s_per_image_stream_same_n": new["seconds"] / n, "s_per_image_old": old["seconds"] / n,
            "n_images": n, "n_images_stream": REPEAT * n, "size": args.size}, indent=2) + "\n")  # fmt: skip
    if args.write_report:
        from report_md import REPORT, write_block

        write_block(REPORT, "eval_speed", HEADING, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
