"""``mind-engine match-pairs LIST --out DIR`` and ``mind-engine match-video VIDEO --gap K --out DIR``.

Both run ``match_many`` (in this process, or on Ray with ``--ray`` / ``--ray-address``); the
exit status is 0 when every pair matched, 1 when some failed (listed in DIR/manifest.json), 2
for a usage error.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np


def _positive(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {s}")
    return v


def add_parsers(sub, common, radius_type, tiers) -> None:
    """Add both subcommands to the ``mind-engine`` parser's subparsers ``sub``."""
    p = sub.add_parser("match-pairs", help="match every pair of a CSV or text list of image paths")
    p.add_argument("list", help="one pair a line: IMG1,IMG3 (or tab/space separated); relative to the list's folder")
    v = sub.add_parser("match-video", help="match frames t and t+K of a video (or a folder of frames)")
    v.add_argument("video")
    v.add_argument("--gap", type=_positive, default=1, help="frame gap K between the two frames of a pair (default 1)")
    for sp in (p, v):
        sp.add_argument("--out", required=True, help="output folder: one KEY.npz per pair and manifest.json")
        sp.add_argument("--stride", type=_positive, default=4, help="query grid stride in pixels (default 4)")
        sp.add_argument("--radius", type=radius_type, default=None, help="search radius (default: whole image)")
        sp.add_argument("--queries", default=None, metavar="FILE",
                        help="match at these points instead of a grid: a text file of x,y lines")
        sp.add_argument("--tier", default="auto", choices=tiers, help="engine tier (default auto)")
        sp.add_argument("--ray", action="store_true", help="run on Ray (a local instance unless --ray-address)")
        sp.add_argument("--ray-address", default=None, help="join this Ray cluster ('auto': the running one); implies --ray")
        sp.add_argument("--workers", type=_positive, default=None,
                        help="Ray actors (default: one per GPU, else one per CPU / --threads)")
        sp.add_argument("--threads", type=_positive, default=None, help="torch CPU threads per worker")
        sp.add_argument("--retries", type=int, default=2, help="retries of a pair whose Ray worker died (default 2)")
        sp.add_argument("--no-progress", action="store_true", help="no progress bar")
        common(sp)


def _queries(path):
    if path is None:
        return None
    try:
        q = np.loadtxt(path, delimiter=",", ndmin=2)
    except (OSError, ValueError) as e:
        raise ValueError(f"--queries {path}: {e}") from e
    if q.shape[1] != 2:
        raise ValueError(f"--queries {path}: expected x,y lines, got {q.shape[1]} columns")
    return q


def _run(a, pairs, total) -> int:
    from .job import match_many

    backend = "ray" if a.ray or a.ray_address else "local"
    if backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError as e:
            raise ValueError("--ray needs Ray: pip install 'mind-engine[ray]'") from e
    elif a.workers not in (None, 1):
        raise ValueError(f"--workers {a.workers} needs --ray (without it, one worker runs in this process)")
    man = match_many(pairs, a.out, stride=a.stride, radius=a.radius, queries=_queries(a.queries), tier=a.tier,
                     weights=a.weights, device=a.device, backend=backend, workers=a.workers, threads=a.threads,
                     ray_address=a.ray_address, retries=a.retries, progress=False if a.no_progress else None,
                     total=total)
    c = man["counts"]
    print(f"{c['ok']} pairs matched ({c['resumed']} of them by an earlier run), {c['failed']} failed, "
          f"in {man['seconds']:.1f} s; wrote {a.out}/manifest.json")
    for r in [r for r in man["pairs"] if r["status"] == "failed"][:5]:
        print(f"  failed {r['key']}: {r['error']}", file=sys.stderr)
    return 1 if c["failed"] else 0


def cmd_match_pairs(a) -> int:
    from .pairs import read_pair_list

    pairs = read_pair_list(a.list)
    return _run(a, pairs, len(pairs))


def cmd_match_video(a) -> int:
    from .pairs import video_length, video_pairs

    n = video_length(a.video)
    return _run(a, video_pairs(a.video, a.gap), None if n is None else max(0, n - a.gap))
