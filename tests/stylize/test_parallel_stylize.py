"""Issue 15, deliverables 2 and 4 (stylize): the (photo, seed) split over processes, a
2-process ``svdinst stylize`` that writes the same bytes as one process, and the choice of
``batch_size="auto"`` from (fake) free GPU memory."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from stylize_helpers import FAST, _photo

from svdinst.errors import SvdinstError
from svdinst.parallel import shard
from svdinst.stylize.config import AUTO_MAX_BATCH, StylizeConfig, auto_batch_size
from svdinst.stylize.folder import work_batches

GiB = 2**30


@pytest.mark.parametrize("world", [1, 2, 3, 5])
@pytest.mark.parametrize("batch", [1, 4, 7])
def test_split_covers_every_photo_seed_once(world: int, batch: int) -> None:
    files = [Path(f"p{i}.png") for i in range(5)]
    seeds = list(range(3))
    batches = work_batches(files, seeds, batch)
    assert all(len(b) == batch for b in batches[:-1]) and 1 <= len(batches[-1]) <= batch
    done = [pair for rank in range(world) for b in shard(batches, rank, world) for pair in b]
    assert sorted(done) == sorted((f, k) for f in files for k in seeds)  # each exactly once
    per_rank = [sum(map(len, shard(batches, r, world))) for r in range(world)]
    assert max(per_rank) - min(per_rank) <= batch  # balanced to one batch


def test_auto_batch_size_from_free_memory() -> None:
    t4_free = int(12.3 * GiB)  # a 14.75 GiB T4 with SD-1.4 fp16 loaded
    assert auto_batch_size(t4_free) == 16
    # the modelled peak of the chosen batch leaves the reserve free
    assert 16 * 0.5 * 1.2 + 1.0 <= 12.3 < 32 * 0.5 * 1.2 + 1.0
    assert auto_batch_size(70 * GiB) == AUTO_MAX_BATCH == 32
    assert auto_batch_size(int(3.5 * GiB)) == 4
    assert auto_batch_size(GiB // 2) == 1  # never 0: batch 1 is tried, OOM says the rest
    assert auto_batch_size(int(3.5 * GiB), resolution=256) == 16  # a quarter of the pixels
    assert auto_batch_size(int(12.3 * GiB), resolution=1024) == 4
    sizes = [auto_batch_size(int(g * GiB)) for g in range(1, 80)]
    assert sizes == sorted(sizes) and all(s & (s - 1) == 0 for s in sizes)  # powers of two


def test_stylizer_resolves_auto_from_its_gpus_free_memory(monkeypatch) -> None:
    import svdinst.stylize.stylizer as stylizer
    from svdinst.stylize.stylizer import Stylizer

    asked = []
    monkeypatch.setattr(stylizer, "free_gpu_memory", lambda d: asked.append(d) or int(12.3 * GiB))
    fake = SimpleNamespace(device="cuda:1", native_resolution=512)
    assert Stylizer.batch_size(fake, StylizeConfig()) == 16
    assert asked == ["cuda:1"]  # this process's GPU, not GPU 0
    assert Stylizer.batch_size(fake, StylizeConfig(resolution=256)) == 32
    assert Stylizer.batch_size(fake, StylizeConfig(batch_size=3)) == 3  # given: kept
    cpu = SimpleNamespace(device="cpu", native_resolution=512)
    assert Stylizer.batch_size(cpu, StylizeConfig()) == 4
    with pytest.raises(SvdinstError, match="batch_size"):
        StylizeConfig(batch_size="big")
    with pytest.raises(SvdinstError, match="batch_size"):
        StylizeConfig(batch_size=0)


@pytest.mark.parametrize(("fraction", "expected"), [(1.0, 130.0), (14 / 140, 14.0 - 2.5)])
def test_free_gpu_memory_respects_a_memory_fraction_cap(monkeypatch, fraction, expected) -> None:
    """The T4 rehearsal caps an H200 (140 GiB) at 14 GiB: free memory is what the cap leaves."""
    from svdinst.stylize.speed import free_gpu_memory

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d: (130 * GiB, 140 * GiB))
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda d: fraction,
                        raising=False)  # fmt: skip
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda d: int(2.5 * GiB))
    assert free_gpu_memory("cuda:0") == pytest.approx(expected * GiB, abs=1)
    # "cuda" without an index is the current card: torch's fraction getter refuses it (seen on
    # an H100 before the fix: "Expected a torch.device with a specified index")
    seen = []

    def fraction_of(d):
        seen.append(d)
        if not isinstance(d, int) and getattr(d, "index", None) is None:
            raise ValueError("Expected a torch.device with a specified index")
        return fraction

    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", fraction_of, raising=False)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert free_gpu_memory("cuda") == pytest.approx(expected * GiB, abs=1)
    assert seen[-1] == torch.device("cuda", 0)


def test_process_device_follows_local_rank() -> None:
    from svdinst.parallel import process_device

    assert process_device("cuda", {"LOCAL_RANK": "1"}) == "cuda:1"
    assert process_device("cuda", {}) == "cuda"
    assert process_device("cpu", {"LOCAL_RANK": "1"}) == "cpu"


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.png"))
    }


def _content(tmp_path: Path) -> Path:
    content = tmp_path / "content"
    content.mkdir()
    for k in range(3):
        _photo(40 + k).save(content / f"photo{k}.png")  # 9 pairs → 5 batches of 2
    return content


CFG = StylizeConfig(seeds=3, **FAST)  # batch_size 2


def test_two_processes_write_the_bytes_of_one(svd_run: Path, tmp_path: Path) -> None:
    """The reference is a one-process call; then ``svdinst stylize`` runs as two processes
    with the RANK/WORLD_SIZE a launcher (accelerate, torchrun) sets, started together."""
    from svdinst.formats.outputs import OutputsFolder
    from svdinst.stylize.stylizer import Stylizer, stylize_folder

    content = _content(tmp_path)
    stylize_folder(Stylizer(run=svd_run), content, tmp_path / "one", CFG)
    argv = [
        sys.executable, "-m", "svdinst.cli", "stylize", "--run", str(svd_run),
        "--content", str(content), "--out", str(tmp_path / "two"), "--seeds", "3",
        "--steps", str(FAST["steps"]), "--strength", str(FAST["strength"]),
        "--batch-size", "2", "--device", "cpu",
    ]  # fmt: skip
    env = {**os.environ, "WORLD_SIZE": "2", "SVDINST_LAUNCH_ID": str(tmp_path)}
    procs = [
        subprocess.Popen(
            argv,
            env={**env, "RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    for p in procs:
        output = p.communicate(timeout=600)[0]
        assert p.returncode == 0, output
    one, two = _hashes(tmp_path / "one"), _hashes(tmp_path / "two")
    assert len(one) == 9 and one == two  # same files, same bytes
    settings = OutputsFolder(tmp_path / "two").read_settings()
    assert settings["batch"] == 2 and "seconds" in settings  # rank 0 finished the folder
    assert not [p for p in (tmp_path / "two").rglob("*") if p.name.startswith(".")]


def _ranks(run: Path, content: Path, out: Path, launch: str, monkeypatch, **kw) -> list[list]:
    """Two ranks of one launch as threads (each its own Stylizer); the seeds of each rank's
    batches."""
    from svdinst.stylize.stylizer import Stylizer, stylize_folder

    monkeypatch.setenv("SVDINST_LAUNCH_ID", launch)
    stylizers = [Stylizer(run=run), Stylizer(run=run)]
    calls: list[list] = [[], []]
    for rank, st in enumerate(stylizers):
        real = st.stylize_batch
        st.stylize_batch = lambda im, seeds, cfg, r=rank, real=real: (
            calls[r].append(list(seeds)) or real(im, seeds, cfg)
        )
    errors: list[BaseException] = []

    def rank_main(rank: int) -> None:
        try:
            stylize_folder(stylizers[rank], content, out, process=(rank, 2), timeout=120, **kw)
        except BaseException as err:  # re-raised in the test's thread
            errors.append(err)

    threads = [threading.Thread(target=rank_main, args=(r,)) for r in (1, 0)]  # 1 waits for 0
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return calls


def test_ranks_resume_with_the_folders_batch(svd_run: Path, tmp_path: Path, monkeypatch) -> None:
    """A relaunch keeps the finished images and the batches: rank 0 takes the folder's batch
    size, rank 1 takes rank 0's; only the batch that lost an image is made again."""
    content = _content(tmp_path)
    out = tmp_path / "out"
    calls = _ranks(svd_run, content, out, "first", monkeypatch, config=CFG)
    assert calls == [[[0, 1], [1, 2], [2]], [[2, 0], [0, 1]]]  # batches 0, 2, 4 | 1, 3
    first = _hashes(out)
    (out / "photo1" / "seed-2.png").unlink()  # in batch 2: (photo1, 1) (photo1, 2)
    calls = _ranks(svd_run, content, out, "second", monkeypatch, config=CFG)
    assert calls == [[[1, 2]], []] and _hashes(out) == first
    calls = _ranks(svd_run, content, out, "third", monkeypatch, config=CFG, resume=False)
    assert sum(map(len, calls)) == 5 and _hashes(out) == first  # --restart: all made again
