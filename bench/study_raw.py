"""MIND's raw matches per evaluation pair, computed once and cached (``bench/refine_study.py``).

The refinement study tries many variants on the same matches; the MIND readout is the slow part
(seconds per 384x128 stride-4 pair on a CPU), so each pair's raw matches (``refine="none"``, the
default stride, radius and levels) are stored in ``~/.cache/mind_study/`` keyed by the pair, the
precision and the weights' SHA-256, and read back on every rerun.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

CACHE = Path.home() / ".cache" / "mind_study"
FIELDS = ("pts1", "pts3", "query", "score", "score1", "score3", "texture")


def pair_key(p) -> str:
    """A pair's name and a hash of its pixels (so a changed generator is not read stale)."""
    h = hashlib.sha256(p.img1.tobytes() + p.img3.tobytes()).hexdigest()[:12]
    return f"{p.name.replace('/', '_')}_{h}"


def raw_matches(p, model, sha: str, precision: str = "fp32", cache: Path = CACHE):
    """(Matches of ``match(p.img1, p.img3, refine="none", precision=precision)``, seconds it took
    (0 when read from the cache))."""
    from mind_engine import match
    from mind_engine.matches import Matches

    path = cache / f"{pair_key(p)}_{precision}_{sha[:12]}.npz"
    if path.exists():
        with np.load(path) as z:
            return Matches(**{k: z[k] for k in FIELDS}), float(z["seconds"])
    t = time.perf_counter()
    m = match(p.img1, p.img3, model=model, device="cpu", precision=precision, refine="none")
    secs = time.perf_counter() - t
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, seconds=secs, **{k: getattr(m, k) for k in FIELDS})
    return m, secs

