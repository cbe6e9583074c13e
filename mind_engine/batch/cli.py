"""``mind-engine match-pairs LIST --out DIR`` and ``mind-engine match-video VIDEO --gap K --out DIR``.

Both run ``match_many`` (in this process, or on Ray with ``--ray`` / ``--ray-address``); the
exit status is 0 when every pair matched, 1 when some failed (listed in DIR/manifest.json), 2
for a usage error (found before any pair is matched; a folder another job holds is one, and so
is one holding results of other settings, whatever its manifest says: ``--restart`` moves them
aside, ``mind_engine.batch.resume``), 130 after Ctrl-C and 143 after SIGTERM (the manifest then
says ``interrupted``).
"""
from __future__ import annotations

import sys

from ..checks import check_folder
from ..cliargs import (add_match_options, add_model_options, add_queries_option, add_threads_option, choice, number,
                       read_queries, subcommand)


def add_parsers(sub, tiers) -> None:
    """Add both subcommands to the ``mind-engine`` parser's subparsers ``sub``."""
    p = subcommand(sub, "match-pairs", "match every pair of a CSV or text list of image paths")
    p.add_argument("list", help="one pair a line: IMG1,IMG3 (or tab/space separated); relative to the list's folder")
    v = subcommand(sub, "match-video", "match frames t and t+K of a video (or a folder of frames)")
    v.add_argument("video", help="a video file, or a folder of frames (sorted by name)")
    v.add_argument("--gap", type=number, default=1, help="frame gap K between the two frames of a pair")
    for sp in (p, v):
        sp.add_argument("--out", required=True,
                        help="output folder: one KEY.npz per pair and manifest.json; one job at a time holds it")
        add_match_options(sp)
        add_queries_option(sp)
        sp.add_argument("--tier", default="auto", type=choice, choices=tiers, help="engine tier")
        sp.add_argument("--ray", action="store_true", help="run on Ray (a local instance unless --ray-address)")
        sp.add_argument("--ray-address", default=None,
                        help="join this Ray cluster ('auto': the running one); implies --ray (default: none)")
        sp.add_argument("--workers", type=number, default=None,
                        help="Ray actors (default: one per GPU, else one per CPU / --threads)")
        add_threads_option(sp, "torch CPU threads per worker (default: torch's own, or cores / workers on Ray)")
        sp.add_argument("--retries", type=number, default=2, help="retries of a pair whose Ray worker died")
        sp.add_argument("--no-progress", action="store_true", help="no progress bar")
        sp.add_argument("--restart", action="store_true",
                        help="start over: move the folder's earlier manifest.json and results into "
                             "OUT/replaced-<time>/ first (without it, a folder of other settings is refused)")
        add_model_options(sp)


def _backend(a) -> str:
    """"local" or "ray", with what that needs checked."""
    if not (a.ray or a.ray_address):
        if a.workers not in (None, 1):
            raise ValueError(f"--workers {a.workers} needs --ray (without it, one worker runs in this process)")
        return "local"
    try:
        import ray  # noqa: F401
    except ImportError as e:
        raise ValueError("--ray needs Ray: pip install 'mind-engine[ray]'") from e
    return "ray"


def _run(a, pairs, total, backend) -> int:
    from .job import match_many
    from .resume import FolderRefused

    try:
        man = match_many(pairs, a.out, stride=a.stride, radius=a.radius, queries=read_queries(a.queries), tier=a.tier,
                         levels=a.levels, refine=a.refine, weights=a.weights, device=a.device, backend=backend,
                         workers=a.workers, threads=a.threads, ray_address=a.ray_address, retries=a.retries,
                         progress=not a.no_progress, total=total, restart=a.restart)
    except FolderRefused as e:  # said with this command's options, not match_many's arguments
        raise ValueError(e.command_line) from None
    c = man["counts"]
    print(f"{c['ok']} pairs matched ({c['resumed']} of them by an earlier run), {c['failed']} failed, "
          f"in {man['seconds']:.1f} s; wrote {a.out}/manifest.json")
    for r in [r for r in man["pairs"] if r["status"] == "failed"][:5]:
        print(f"  failed {r['key']}: {r['error']}", file=sys.stderr)
    return 1 if c["failed"] else 0


def _check(a) -> str:
    """What both commands check before reading any pair: the backend and the output folder."""
    backend = _backend(a)
    check_folder(a.out, "--out")
    return backend


def cmd_match_pairs(a) -> int:
    from .pairs import read_pair_list

    backend = _check(a)
    pairs = read_pair_list(a.list)
    return _run(a, pairs, len(pairs), backend)


def cmd_match_video(a) -> int:
    from .pairs import video_length, video_pairs

    backend = _check(a)
    pairs = video_pairs(a.video, a.gap)
    n = video_length(a.video)
    return _run(a, pairs, None if n is None else max(0, n - a.gap), backend)
