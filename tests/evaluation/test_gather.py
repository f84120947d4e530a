"""Evaluation over several processes: per-photo partials combined in one-process order (issue 15)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from svdinst.errors import SvdinstError


def _partials(stems: list[str], seeds: int = 3):
    from svdinst.evaluation.stream import PhotoPartial

    g = torch.Generator().manual_seed(0)
    out = []
    for stem in stems:
        r = lambda n: torch.rand(n, generator=g, dtype=torch.float64)  # noqa: E731
        out.append(
            PhotoPartial(stem, torch.randn(seeds, 2048, generator=g), r(3), r(seeds), 20 + r(seeds),
                         r(seeds), r(seeds))
        )  # fmt: skip
    return out


def test_combine_puts_every_process_back_in_photo_order() -> None:
    from svdinst.evaluation.gather import combine, pool
    from svdinst.parallel import shard

    stems = [f"p{k}" for k in range(7)]
    one = _partials(stems)
    ref = pool(one)
    for world in (2, 3):
        parts = [shard(one, rank, world) for rank in range(world)]
        got = pool(combine(reversed(parts), stems))  # arrival order does not matter
        assert torch.equal(got["features"], ref["features"])  # same rows, same order
        for key in ("diversity", "diversity_std", "content", "oracle"):
            assert got[key] == ref[key], key  # the same values summed in the same order
    # The pooled numbers are the per-output / per-photo means they claim to be.
    assert ref["content"] == pytest.approx(np.mean([v for p in one for v in p.content.tolist()]))
    assert ref["diversity"] == pytest.approx(np.mean([p.diversity.mean().item() for p in one]))
    assert ref["oracle"]["n"] == 21
    with pytest.raises(SvdinstError, match="two processes"):
        combine([one[:2], one[1:]], stems)
    with pytest.raises(SvdinstError, match=r"missing \['p6'\]"):
        combine([one[:6]], stems)


def _folder(root: Path) -> tuple[Path, Path, Path]:
    from svdinst.formats.outputs import OutputsFolder

    rng = np.random.default_rng(0)

    def img(size: int) -> Image.Image:
        small = rng.integers(0, 200, size=(4, 4, 3)).astype(np.uint8)
        return Image.fromarray(small).resize((size, size), Image.BICUBIC)

    out, content, style = root / "out", root / "content", root / "style"
    content.mkdir(parents=True)
    style.mkdir()
    for k in range(5):
        img(80).save(content / f"p{k}.png")
        for s in range(2):
            OutputsFolder(out).save_image(f"p{k}", s, img(64))
    for k in range(3):
        img(64).save(style / f"s{k}.png")
    return out, content, style


SCRIPT = """
import json, sys
from svdinst.evaluation.lpips import load_lpips
from svdinst.evaluation.metrics import evaluate
out, content, style, dest = sys.argv[1:]
m = evaluate(out, style, content, mural_oracle=True, device="cpu", batch_size=4,
             lpips_scorer=load_lpips(random_backbone_for_tests=True))
if m is not None:
    json.dump(m, open(dest, "w"))
"""


def test_two_processes_give_the_one_process_metrics(tmp_path, one_thread) -> None:
    """RANK/WORLD_SIZE/MASTER_* as accelerate launch sets them: each process scores every 2nd
    photo, rank 0 gathers (gloo) and writes. Tolerance rel 1e-6: the same ops per image; only a
    photo's batch neighbours differ (CPU kernels give the same values here)."""
    from svdinst.evaluation.lpips import load_lpips
    from svdinst.evaluation.metrics import evaluate

    out, content, style = _folder(tmp_path)
    one = evaluate(out, style, content, mural_oracle=True, device="cpu", batch_size=4,
                   lpips_scorer=load_lpips(random_backbone_for_tests=True))  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "two.json"
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}  # fmt: skip
        args = [sys.executable, "-c", SCRIPT, str(out), str(content), str(style), str(dest)]
        procs.append(subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    two = json.loads(dest.read_text())
    assert two["N"] == one["N"] == 10 and two["n_photos"] == 5
    for key in ("fid", "lpips_diversity", "lpips_diversity_std", "content_lpips", "artfid"):
        assert two[key] == pytest.approx(one[key], rel=1e-6), key
    assert two["kid"]["mean"] == pytest.approx(one["kid"]["mean"], rel=1e-6, abs=1e-12)
    for key in ("psnr", "ssim", "lpips", "n"):
        assert two["oracle"][key] == pytest.approx(one["oracle"][key], rel=1e-6), key
