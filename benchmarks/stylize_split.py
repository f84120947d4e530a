"""Where a stylized image's time goes: VAE encoding, the UNet loop, VAE decoding (issue 15).

``stylize_speed.py`` times whole batches; the 0.15 s/image target needs to know which part to
speed up. This script stylizes one batch with the kit's fastest path (channels-last, fused qkv,
the UNet compiled) on the ``sd14-random`` model, 512 px, 50 DDIM steps, strength 0.8, CFG 7.5,
fp16, and times the VAE's ``encode`` and ``decode`` calls with CUDA events inside the same
batch; the rest of the batch is the UNet loop (40 CFG calls), the text encoder and the host
work around them. The batch is the first of the report's run (``stylize_folder``'s batching,
10 seeds per photo); it runs first as diffusers' img2img encodes it (every pair through the VAE
encoder), then as the kit does (each distinct photo once, the same bits). Then it compiles the
VAE's encoder and decoder too (as the kit's ``SpeedOptions.compile`` has done since this
script measured it; ``--no-compile-vae`` skips it) and times the same batch again, in the same
process.

    python benchmarks/stylize_split.py --write-report   # CUDA: ~3 min on an H100/H200
    python benchmarks/stylize_split.py --smoke          # CPU, tiny model, seconds
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

import torch
from report_md import REPORT, write_block
from stylize_speed import HEADING, free_cuda, make_run, photo, sync


class EventTimer:
    """Wraps a bound method so that each call's device time is recorded: CUDA events when the
    benchmark runs on CUDA, else wall time."""

    def __init__(self, owner: object, name: str, cuda: bool) -> None:
        self.owner, self.name, self.inner, self.cuda = owner, name, getattr(owner, name), cuda
        self.spans: list[tuple[object, object]] = []
        setattr(owner, name, self)

    def _mark(self) -> object:
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def __call__(self, *args, **kwargs):
        start = self._mark()
        out = self.inner(*args, **kwargs)
        self.spans.append((start, self._mark()))
        return out

    def seconds(self) -> float:
        """Total seconds of the recorded calls (syncs first); clears them."""
        sync()
        total = sum(s.elapsed_time(e) / 1e3 if self.cuda else e - s for s, e in self.spans)
        self.spans.clear()
        return total

    def remove(self) -> None:
        setattr(self.owner, self.name, self.inner)


def split_batch(call, vae, cuda: bool) -> dict[str, float]:
    """Seconds of one call of ``call`` (a batch) and of its VAE encode/decode calls."""
    timers = {k: EventTimer(vae, k, cuda) for k in ("encode", "decode")}
    try:
        sync()
        t0 = time.perf_counter()
        call()
        sync()
        total = time.perf_counter() - t0
        parts = {k: t.seconds() for k, t in timers.items()}
    finally:
        for t in timers.values():
            t.remove()
    return {"total": total, **parts, "rest": total - sum(parts.values())}


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="CPU, tiny model, no compiling")
    p.add_argument("--batch", type=int, help="default: the Stylizer's auto batch (smoke: 4)")
    p.add_argument("--no-compile-vae", dest="compile_vae", action="store_false")
    p.add_argument("--write-report", action="store_true")
    p.add_argument("--report", type=Path, default=REPORT)
    args = p.parse_args(argv)

    from svdinst.stylize.config import StylizeConfig
    from svdinst.stylize.folder import work_batches
    from svdinst.stylize.speed import SpeedOptions
    from svdinst.stylize.stylizer import Stylizer

    cuda = torch.cuda.is_available() and not args.smoke
    device, model = ("cuda", "sd14-random") if cuda else ("cpu", "tiny")
    res, steps = (512, 50) if cuda else (64, 5)
    dtype = torch.float16 if cuda else torch.float32
    card = torch.cuda.get_device_name() if cuda else "CPU (smoke)"
    cfg = StylizeConfig(strength=0.8, steps=steps, guidance=7.5, resolution=res)
    rows: list[tuple[str, int, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="stylize-split-") as work:
        run = make_run(model, Path(work), 256 if cuda else 64)
        speed = SpeedOptions(channels_last=True, fuse_qkv=True)
        st = Stylizer(run=run, device=device, dtype=dtype, speed=speed)
        if cuda:  # the UNet alone first; the VAE below (the kit's compile lever does both)
            st.pipe.unet.compile()
        batch = args.batch or (st.batch_size(StylizeConfig(resolution=res)) if cuda else 4)
        # The report's run's first batch: stylize_folder's batching, 10 seeds per photo.
        distinct = [photo(k, res) for k in range(-(-batch // 10))]
        pairs = work_batches(list(range(len(distinct))), list(range(10)), batch)[0]
        photos, seeds = [distinct[f] for f, _ in pairs], [k for _, k in pairs]

        def call():
            st.stylize_batch(photos, seeds, cfg)

        call()  # warm-up: compiles the UNet
        name = "kit + levers + torch.compile (UNet)" if cuda else "kit + levers (no compiling)"
        # The kit before it encoded each photo once: diffusers' img2img encodes every pair.
        st._img2img_latents = lambda tensors, images, gens: (
            (torch.stack([tensors[id(im)] for im in images]) + 1) / 2
        )
        rows.append((name + ", every pair encoded (diffusers)", batch,
                     split_batch(call, st.pipe.vae, cuda)))  # fmt: skip
        del st._img2img_latents  # the class's method again
        rows.append(
            (name + ", each photo encoded once", batch, split_batch(call, st.pipe.vae, cuda))
        )
        if args.compile_vae and cuda:
            st.pipe.vae.encoder.compile()
            st.pipe.vae.decoder.compile()
            call()  # compiles the VAE
            rows.append(("… and the VAE's encoder and decoder compiled (the kit's compile)", batch,
                         split_batch(call, st.pipe.vae, cuda)))  # fmt: skip
        st.close()
        free_cuda()
    lines = [f"Card: **{card}**, {datetime.date.today().isoformat()}; torch {torch.__version__}. "
             f"{res} px, {steps} DDIM steps, strength 0.8, CFG 7.5, "
             f"{'fp16' if cuda else 'fp32'}; one timed batch after a warm-up one; ms per image.",
             "", "| pipeline | batch | total | VAE encode | VAE decode | rest (UNet loop, text, "
             "host) | VAE share |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, b, s in rows:
        ms = {k: 1e3 * v / b for k, v in s.items()}
        lines.append(f"| {name} | {b} | {ms['total']:.1f} | {ms['encode']:.1f} | "
                     f"{ms['decode']:.1f} | {ms['rest']:.1f} | "
                     f"{(s['encode'] + s['decode']) / s['total']:.1%} |")  # fmt: skip
    text = "\n".join(lines)
    print(text)
    if args.write_report and cuda:
        write_block(args.report, "stylize_speed", HEADING, text, "split")
    return text


if __name__ == "__main__":
    main()
