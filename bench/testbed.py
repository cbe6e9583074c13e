"""What the timing and precision benchmarks share: the machine's name, the test pair they time,
and how two runs' matches of the same queries agree. A module of its own, below every bench
script, so that none of them imports another for these (issue 39: latency <-> c2f_profile,
precision imported each other)."""
from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import torch


def cpu_name() -> str:
    """The CPU's model name (Linux; with its family and model numbers and whether it has bf16 dot
    products, which a bare "AMD EPYC" does not say), else what the platform module knows."""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines()
                    if ":" in line)
        info = {k.strip(): v.strip() for k, v in info.items()}
        bf16 = ", AVX512-BF16" if "avx512_bf16" in info.get("flags", "").split() else ""
        return (f"{info['model name']} ({os.cpu_count()} cores, family {info.get('cpu family', '?')} model "
                f"{info.get('model', '?')}{bf16})")
    except (OSError, KeyError, ValueError):
        return platform.processor() or platform.machine() or "cpu"


def test_pair(h: int, w: int, device):
    """A real image and the same image moved by a smooth shift (content does not change speed),
    as two (1, 3, h, w) tensors on ``device``."""
    try:
        from skimage import data, transform

        img = transform.resize(data.astronaut(), (h + 8, w + 8), anti_aliasing=True).astype(np.float32)
        a, b = img[4:4 + h, 4:4 + w], img[2:2 + h, 7:7 + w]
    except ImportError:
        g = torch.Generator().manual_seed(0)
        a, b = (torch.rand(h, w, 3, generator=g).numpy() for _ in range(2))
    to = lambda x: torch.as_tensor(np.ascontiguousarray(x)).permute(2, 0, 1)[None].to(device)  # noqa: E731
    return to(a), to(b)


test_pair.__test__ = False  # a bench helper, not a pytest test


def match_agreement(ref, got) -> dict:
    """Two ``Matches`` of the same queries (a reference run's, another's): the fraction whose
    points (both images) are identical, within 1 px, and the relative score error of the
    identical ones (median, 99th percentile, max)."""
    d = np.maximum(np.abs(got.pts1 - ref.pts1).max(1), np.abs(got.pts3 - ref.pts3).max(1))
    same = d == 0
    err = np.abs(got.score - ref.score)[same] / np.maximum(np.abs(ref.score[same]), 1e-30)
    q = (lambda p: float(np.quantile(err, p))) if len(err) else (lambda p: float("nan"))
    return {"matches": len(d), "same_point": float(same.mean()), "within_1px": float((d <= 1).mean()),
            "score_rel_err_median": q(0.5), "score_rel_err_p99": q(0.99), "score_rel_err_max": q(1.0)}
