"""Stylize a folder of photos into an outputs folder, in one process or split over several.

The work is every (photo, seed) pair, photo-major, cut into batches of the Stylizer's batch
size (a batch may span photos, so ``batch_size`` 32 pays off with 10 seeds a photo). Under
``accelerate launch --num_processes N -m svdinst.cli stylize …`` each process takes every N-th
*batch* (:func:`svdinst.parallel.shard`): a batch's images depend only on its pairs (each pair
draws from ``torch.Generator(seed)``), so with the same batches every image is bit-identical to
a one-process run's, and no two processes ever write the same file.

Shared metadata is written by rank 0 only: it clears or keeps the folder, resolves
``batch_size="auto"`` (or keeps a resumed folder's batch) and writes the settings file with a
launch id; the other ranks wait for that file and take its batch size, so every process cuts
the same batches. At the end rank 0 waits until every image exists, then adds ``seconds``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from svdinst.data import list_images, load_image
from svdinst.errors import DataError, SvdinstError
from svdinst.formats.outputs import OutputsFolder
from svdinst.parallel import current_process, shard
from svdinst.stylize.config import StylizeConfig

if TYPE_CHECKING:
    from PIL import Image

    from svdinst.stylize.stylizer import Stylizer

# Settings-file keys that are bookkeeping, not how the images look: a resumed call compares the
# rest. "batch" is the batch size actually used (kept on resume, so batches stay the same).
SECONDS, BATCH, LAUNCH = "seconds", "batch", "launch"
WAIT_S = 1800.0  # how long a process waits for another's settings or images to move on
POLL_S = 0.5


def content_images(content: str | os.PathLike, max_photos: int | None = None) -> list[Path]:
    """The photos to stylize: one file, or every image of a folder (validated; unique stems).

    Args:
        content (`str` or `os.PathLike`): a photo or a folder of photos.
        max_photos (`int`, *optional*): only the first ``max_photos`` of the folder (sorted by
            name), e.g. a profile's ``test_photos`` so a big test set fits a notebook's budget.
    """
    path = Path(content)
    if path.is_file():
        load_image(path)  # a clear DataError for a corrupt file, before any sampling
        return [path]
    if max_photos is not None and max_photos < 1:
        raise DataError(f"max_photos must be ≥ 1 or None, got {max_photos}.")
    files = list_images(path)[:max_photos]
    stems = [p.stem for p in files]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise DataError(
            f"{path}: several images share the stem(s) {dupes}; outputs are named by stem, so "
            "rename them."
        )
    return files


def launch_id() -> str:
    """What the processes of one launch share and the next launch does not: the launcher's
    process (accelerate/torchrun start every rank as a child of one agent) on this host.
    ``SVDINST_LAUNCH_ID`` overrides it (e.g. several hosts on a shared disk)."""
    return os.environ.get("SVDINST_LAUNCH_ID") or f"{socket.gethostname()}:{os.getppid()}"


def work_batches(files: list[Path], seeds: list[int], batch: int) -> list[list[tuple[Path, int]]]:
    """Every (photo, seed) pair, photo-major, cut into batches of ``batch`` (the last shorter).

    Args:
        files (`list[Path]`): the photos, in an order every process agrees on.
        seeds (`list[int]`): the sampling seeds of each photo.
        batch (`int`): pairs per batch.
    """
    pairs = [(f, k) for f in files for k in seeds]
    return [pairs[i : i + batch] for i in range(0, len(pairs), batch)]


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two settings files describe the same images (bookkeeping keys aside)."""
    skip = {SECONDS, BATCH, LAUNCH}
    return {k: v for k, v in a.items() if k not in skip} == {
        k: v for k, v in b.items() if k not in skip
    }


def _prepare(
    out: OutputsFolder, settings: dict, wanted: set[Path], resume: bool, auto: int
) -> tuple[int, float]:
    """Rank 0: keep or clear the folder and write the settings; ``(batch, earlier seconds)``."""
    earlier = out.read_settings()
    if resume and _same(earlier, settings) and isinstance(earlier.get(BATCH), int):
        batch, before = earlier[BATCH], float(earlier.get(SECONDS, 0.0))
        # images of photos no longer in ``content`` would be evaluated with the new ones
        for stale in (p for ps in out.collect().values() for p in ps) if out.has_images() else ():
            if stale not in wanted:
                stale.unlink()
    else:
        out.clear()
        batch, before = auto, 0.0
    out.write_settings({**settings, BATCH: batch})  # in progress: no "seconds" yet
    return batch, before


def _wait_for_settings(out: OutputsFolder, settings: dict, timeout: float) -> int:
    """Ranks > 0: wait for rank 0's settings of this launch; its batch size."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = out.read_settings()
        except ValueError:  # never half-written (atomic), but be safe on odd file systems
            found = {}
        if found.get(LAUNCH) == settings[LAUNCH]:
            if not _same(found, settings):
                raise SvdinstError(
                    f"{out.settings_path}: the processes of this launch disagree on the "
                    "settings (different flags or files per process?); launch them alike."
                )
            return int(found[BATCH])
        time.sleep(POLL_S)
    raise SvdinstError(
        f"{out.settings_path}: process 0 wrote no settings for this launch in {timeout:.0f} s "
        "(did it fail? see its error); rerun the launch."
    )


def _wait_for_images(paths: list[Path], timeout: float) -> None:
    """Rank 0: wait until every image exists (the other ranks' too), ``timeout`` s without
    a new one at most."""
    missing = [p for p in paths if not p.is_file()]
    last, seen = time.monotonic(), len(missing)
    while missing:
        if time.monotonic() - last > timeout:
            raise SvdinstError(
                f"{len(missing)} image(s) of the other processes never appeared (e.g. "
                f"{missing[0]}); rerun the same command: finished images are kept."
            )
        time.sleep(POLL_S)
        missing = [p for p in missing if not p.is_file()]
        if len(missing) < seen:
            last, seen = time.monotonic(), len(missing)


def stylize_folder(
    stylizer: Stylizer,
    content: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: StylizeConfig | None = None,
    resume: bool = True,
    max_photos: int | None = None,
    *,
    process: tuple[int, int] | None = None,
    timeout: float = WAIT_S,
) -> dict[str, list[Path]]:
    """Stylize every photo with seeds 0…N−1 into the outputs folder ``out_dir``.

    The settings file is written first (without ``seconds``) and again when every image
    exists. A call whose settings equal the folder's (same run files, photos and sampling
    settings) keeps the images already written and makes only the missing ones, with the
    folder's batch size: after a crash or a Colab disconnect a re-run finishes the folder. A
    batch is redone whole when any of its images is missing, so every image comes from the
    same batch as in an uninterrupted call (equal bits). Other settings clear the folder's
    images first, so old and new outputs are never evaluated together.

    Args:
        stylizer (`Stylizer`): the loaded model and run.
        content (`str` or `os.PathLike`): a photo or a folder of photos.
        out_dir (`str` or `os.PathLike`): the method's output folder (e.g. ``outputs/svd-inst``).
        config (`StylizeConfig`, *optional*): defaults to ``StylizeConfig()``.
        resume (`bool`, defaults to `True`): keep matching images; `False` always starts over.
        max_photos (`int`, *optional*): stylize only the first ``max_photos`` photos of a folder
            (see :func:`content_images`).
        process (`tuple[int, int]`, *optional*): ``(rank, world)``; defaults to the launcher's
            (:func:`svdinst.parallel.current_process`, ``(0, 1)`` when not launched).
        timeout (`float`, defaults to 1800): seconds a process waits for another one.

    Returns:
        `dict[str, list[Path]]`: content stem → its files (every process's), in seed order.
    """
    cfg = config or StylizeConfig()
    rank, world = process if process is not None else current_process()
    files = content_images(content, max_photos)
    out = OutputsFolder(out_dir)
    out.path.mkdir(parents=True, exist_ok=True)
    seeds = list(range(cfg.seeds))
    written = {f.stem: [out.image_path(f.stem, k) for k in seeds] for f in files}
    settings = {**stylizer.settings(cfg), "content": str(content), "n_photos": len(files)}
    settings = json.loads(json.dumps({**settings, LAUNCH: launch_id()}))  # as it reads back
    if rank == 0:
        wanted = {p for ps in written.values() for p in ps}
        batch, before = _prepare(out, settings, wanted, resume, stylizer.batch_size(cfg))
    else:
        batch, before = _wait_for_settings(out, settings, timeout), 0.0
    mine = shard(work_batches(files, seeds, batch), rank, world)
    start = time.perf_counter()
    desc = "stylize" if world == 1 else f"stylize (process {rank + 1}/{world})"
    photos: dict[Path, Image.Image] = {}  # photos of the current batch, each loaded once
    with tqdm(total=sum(map(len, mine)), desc=desc, unit="img", position=rank) as bar:
        for pairs in mine:
            if all(out.image_path(f.stem, k).is_file() for f, k in pairs):
                bar.update(len(pairs))
                continue
            photos = {
                f: photos[f] if f in photos else load_image(f)
                for f in dict.fromkeys(f for f, _ in pairs)
            }
            images = stylizer.stylize_batch([photos[f] for f, _ in pairs],
                                            [k for _, k in pairs], cfg)  # fmt: skip
            for (file, seed), img in zip(pairs, images):
                out.save_image(file.stem, seed, img)
            bar.update(len(pairs))
    if rank == 0:
        _wait_for_images([p for ps in written.values() for p in ps], timeout)
        seconds = round(before + time.perf_counter() - start, 2)
        out.write_settings({**settings, BATCH: batch, SECONDS: seconds})
    return written
