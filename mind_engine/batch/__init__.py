"""Matching many pairs: pair lists and videos, in this process or on Ray, resumably.

    pairs.py       what is matched: pair lists (CSV/text), video frames at a gap, the caller's pairs
    spec.py        the model as hashed checkpoint bytes, the settings, the job's fingerprint
    store.py       the output folder: one atomic .npz per pair, manifest.json
    work.py        one worker: the model loaded once, decoding and matching pair after pair
    local.py       the in-process backend (decoding of the next pair overlaps matching)
    ray_runner.py  the Ray backend (actors per GPU or CPU share, dead actors replaced)
    job.py         ``match_many``, tying them together
    cli.py         ``mind-engine match-pairs`` and ``mind-engine match-video``
"""
from .job import match_many
from .pairs import Pair, read_pair_list, video_pairs
from .store import read_result, result_files

__all__ = ["Pair", "match_many", "read_pair_list", "read_result", "result_files", "video_pairs"]
