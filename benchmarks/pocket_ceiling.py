"""Is the pocket model able to learn the held-out proxy at all? Full fine-tuning as the ceiling.

SVD-InST trains ~0.1 M parameters (InST's image→token module and the spectral shifts). Training
*every* UNet weight on the same style crops, under the empty prompt, is the upper bound of what
any parameter-efficient method can reach on this model. This script trains that ceiling with the
kit's crop sampler and loss, stylizes the pocket experiment's test crops with it exactly as the
base model is stylized (the profile's start, strength, steps and guidance; the empty prompt), and
scores base, svd-inst (training seed 0) and each ceiling run — and base and svd-inst started
from AdaIN toward a style image, as InST's own notebook starts — with the experiment's metrics
(FID to the proxy reference, SSIM to the oracle, content preservation).

It looks at the held-out TEST photos, so it is a diagnostic only: nothing in the profile is
chosen from it. Writes ``reports/pocket/ceiling.md`` and ``reports/figures/pocket_ceiling.png``.
CPU, ~3 min per ceiling run on 2 cores:

    python benchmarks/pocket_ceiling.py --steps 400 --lrs 1e-4 1e-3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from pocket_training_length import context, publish  # the same pocket-profile work folder
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "pocket" / "ceiling.md"
FIGURES = ROOT / "reports" / "figures"
# The evaluation scores every output folder in --work, so an earlier call's runs get rows too.
EARLIER = "an earlier call's run (its outputs in the same `--work` folder)"


def finetune_unet(ctx, steps: int, lr: float, out: Path) -> tuple[Path, float, list[float]]:
    """Train every UNet weight of the profile's model on its style crops; save a model folder.

    The crops, their VAE latents, the noise schedule and the loss are the training loop's
    (:class:`~svdinst.training.style_crops.StyleSampler` with the run config's settings,
    :class:`~svdinst.training.objective.DiffusionObjective`); the
    prompt is the empty caption the base model is stylized with, so the UNet itself must carry
    the style. Returns the model folder, the training seconds and the losses.
    """
    from svdinst.models.clip_vocab import padded_ids
    from svdinst.models.loading import load_components, resolve_model
    from svdinst.training.inversion import PlaceholderInjector
    from svdinst.training.objective import DiffusionObjective
    from svdinst.training.style_crops import StyleSampler, gather_style_images

    cfg = ctx.train_config("svd-inst", 0)
    parts = ["unet", "vae", "text_encoder", "tokenizer", "scheduler"]
    comps = load_components(ctx.profile.model, parts)
    styles = gather_style_images(cfg.style)
    sampler = StyleSampler([im for _, im in styles], comps.vae, ctx.profile.resolution,
                           cfg.augment, cfg.min_crop, cfg.crop_pool, cfg.seed)  # fmt: skip
    ids = padded_ids(comps.tokenizer, "").expand(cfg.batch_size, -1)
    unet = comps.unet.train().requires_grad_(True)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    num_t = comps.scheduler.config.num_train_timesteps
    losses, start = [], time.perf_counter()
    # The training loop's loss (noising, target, dtypes); no token: the injector passes through.
    with PlaceholderInjector(comps.text_encoder, token_id=-1) as injector:
        objective = DiffusionObjective(unet, comps.text_encoder, comps.scheduler, injector,
                                       None, None)  # fmt: skip
        for _ in tqdm(range(steps), desc=f"full fine-tune (lr {lr:g})"):
            picks, _, eps = sampler.draw(cfg.batch_size, gen)
            z = sampler.latents(picks, eps, "cpu")
            noise = torch.randn(z.shape, generator=gen)
            t = torch.randint(0, num_t, (cfg.batch_size,), generator=gen)
            loss, _ = objective(z, noise, t, ids, None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    seconds = time.perf_counter() - start
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(resolve_model(ctx.profile.model), out)
    unet.eval().save_pretrained(out / "unet")
    return out, seconds, losses


def main(argv: list[str] | None = None) -> int:
    from svdinst.figures import save_figure
    from svdinst.pocket.experiment import (
        PocketExperimentConfig,
        evaluate_experiment,
        pocket_figure,
        run_pocket_experiment,
    )
    from svdinst.stylize.folder import stylize_folder
    from svdinst.stylize.stylizer import Stylizer

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=400, help="≈ 2 min at batch 2 on 2 CPU cores")
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 1e-3])
    p.add_argument("--work", type=Path, default=Path("/tmp/svdinst-pocket-ceiling"))
    p.add_argument(
        "--tag", help="write ceiling-TAG.md and pocket_ceiling_TAG.png (keeps the default pair)"
    )
    args = p.parse_args(argv)
    # ceiling-TAG.md beside pocket_ceiling_TAG.png; without a tag the default pair.
    report_name = f"ceiling-{args.tag}.md" if args.tag else OUT.name
    figure_name = f"pocket_ceiling_{args.tag}" if args.tag else "pocket_ceiling"
    start = time.perf_counter()
    ctx = context(args.work)
    res = run_pocket_experiment(ctx, PocketExperimentConfig(modes=("svd-inst",), seeds=(0,)))
    root, sets = res["root"], res["sets"]
    stylize = ctx.stylize_config()
    trained = {}
    for lr in args.lrs:
        name = f"full-finetune-lr{lr:g}"
        model, seconds, losses = finetune_unet(ctx, args.steps, lr, args.work / "models" / name)
        trained[name] = (seconds, statistics.mean(losses[:50]), statistics.mean(losses[-50:]))
        with Stylizer(str(model), device=ctx.device, dtype=ctx.dtype) as stylizer:
            stylize_folder(stylizer, sets["crops"], root / "outputs" / name,
                           replace(stylize, prompt=""), max_photos=None)  # fmt: skip
    # InST's own notebook starts from AdaIN(content latent, style latent) (per-channel mean and
    # std moved to one style image's); the kit's --adain. Base and svd-inst with that start:
    adain = sorted(ctx.style_dir.iterdir())[0]
    for name, run in (("base", None), ("svd-inst", res["runs"]["svd-inst"])):
        config = replace(stylize, adain_style=str(adain))
        with ctx.stylizer(run) as stylizer:
            config = config if run is not None else replace(config, prompt="")
            stylize_folder(stylizer, sets["crops"], root / "outputs" / f"{name}-adain", config,
                           max_photos=None)  # fmt: skip
    results = evaluate_experiment(root, sets, device=ctx.device)
    (base,) = results["base"]
    how = {"base": "untrained, empty prompt",
           "svd-inst": f"the profile's run (seed 0, {ctx.profile.train_steps} steps)",
           "base-adain": f"base, started from AdaIN toward `{adain.name}`",
           "svd-inst-adain": f"svd-inst, started from AdaIN toward `{adain.name}`"}  # fmt: skip
    for name, (sec, first, last) in trained.items():
        how[name] = (
            f"{args.steps} steps, every UNet weight; loss {first:.3f} → {last:.3f}; {sec:.0f} s"
        )
    rows = []
    for name, runs in results.items():
        m = runs[0]
        gain = 100 * (base["fid"] - m["fid"]) / base["fid"]
        cp = m["content_preservation"]
        rows.append(f"| {name} | {how.get(name, EARLIER)} | {m['N']} | {m['fid']:.1f} | {gain:+.1f}% | "
                    f"{m['oracle']['ssim']:.3f} | {cp['own']:.3f} | {cp['identified']:.2f} |")  # fmt: skip
    fig = pocket_figure(root, ["base", "svd-inst", *trained, "svd-inst-adain"])
    figure = save_figure(fig, figure_name, FIGURES, close=True)
    text = "\n".join([
        "# Pocket model: full fine-tuning as the ceiling of what training can reach",
        "",
        f"`benchmarks/pocket_ceiling.py` (CPU, {time.strftime('%Y-%m-%d')}; "
        f"{(time.perf_counter() - start) / 60:.0f} min). The pocket experiment's test crops and "
        f"metrics, stylized with the profile's settings (start {stylize.init}, strength "
        f"{stylize.strength:g}, {stylize.steps} DDIM steps, guidance {stylize.guidance_scale:g}). "
        "The full fine-tunes train every UNet weight (AdamW, batch "
        f"{ctx.profile.train_batch_size}) on the same style crops under the empty prompt and are "
        "stylized under it, as the base model is. The *-adain rows start as InST's own notebook "
        "does: the content latent's per-channel mean and std moved to a style image's "
        "(`--adain`). Test photos are used here, so this is a "
        "diagnostic: nothing is chosen from it. One training seed: read differences against the "
        "report's seed spread (about ±10 FID).",
        "",
        "| row | training | N | FID to proxy ↓ | FID gain over base ↑ | SSIM to oracle ↑ | "
        "SSIM to own photo | closest to own photo |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"The 25 % target needs FID ≤ {0.75 * base['fid']:.1f} at this N.",
        "",
        f"![test photo | base | svd-inst | full fine-tunes | svd-inst from AdaIN | oracle](../figures/{figure.name})",
    ])  # fmt: skip
    publish(text, OUT.with_name(report_name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
