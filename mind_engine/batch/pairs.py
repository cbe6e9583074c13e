"""The pairs a batch job matches: from the caller's list, a CSV or text file of paths, or the
frames of a video (or of a folder of frames) at a fixed gap.

A pair is named by a ``key`` (its result file is ``<key>.npz``) and by the names of its two
images; resume recognises a finished pair by both. A row of a list that cannot be a pair keeps
its error and is reported like any other bad pair, without stopping the job.
"""
from __future__ import annotations

import csv
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


from ..checks import check_integer
from ..data.decode import frame_count, video_frames
from ..images import IMAGE_SUFFIXES, image_pair

KEY_RE = re.compile(r"^[A-Za-z0-9._-]+$")
HEADERS = {("img1", "img3"), ("img1", "img2"), ("image1", "image2")}


@dataclass
class Pair:
    """Two images to match: paths or arrays (``img1``, ``img3``), their names, and an error
    already known about the pair (a malformed list row), reported when it is processed."""

    key: str
    img1: object
    img3: object
    name1: str
    name3: str
    error: str | None = None

    def __post_init__(self):
        if not KEY_RE.match(self.key):
            raise ValueError(f"pair key {self.key!r}: use letters, digits, '.', '_' and '-' only "
                             f"(it names the result file)")

    def load(self):
        """Both images decoded and checked, as (3, H, W) float32 CPU tensors of one size; raises
        ``ImageError`` (missing, unreadable, sizes that differ) or ``ValueError`` (bad row)."""
        if self.error is not None:
            raise ValueError(self.error)
        return image_pair(self.img1, self.img3, "cpu")


def _name(img, i: int, which: str) -> str:
    return str(img) if isinstance(img, (str, Path)) else f"<{type(img).__name__} {which} of pair {i}>"


def as_pairs(pairs) -> Iterator[Pair]:
    """``Pair`` objects as they are; (img1, img3) tuples of paths or arrays keyed by position.
    A key seen before raises ValueError before its pair is matched (keys name result files)."""
    seen: set[str] = set()
    for p in _as_pairs(pairs):
        if p.key in seen:
            raise ValueError(f"pair key {p.key!r} occurs twice in the job; keys name result files and must be unique")
        seen.add(p.key)
        yield p


def _as_pairs(pairs) -> Iterator[Pair]:
    for i, p in enumerate(pairs):
        if isinstance(p, Pair):
            yield p
            continue
        try:
            img1, img3 = p
        except (TypeError, ValueError):
            yield Pair(f"{i:06d}", None, None, "?", "?", error=f"pair {i}: expected (img1, img3), got {p!r:.80}")
            continue
        yield Pair(f"{i:06d}", img1, img3, _name(img1, i, "img1"), _name(img3, i, "img3"))


def read_pair_list(path) -> list[Pair]:
    """Pairs from a file (``.csv`` or any other name), one pair a line, two paths separated by a
    comma, tab or spaces (CSV quoting: quote paths holding the separator). Blank lines and ``#`` comments are skipped, and so
    is a header row ``img1,img3``, and a UTF-8 byte-order mark. Relative paths are relative to the
    list's folder. Pair keys are ``line<N>`` (the line number)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a pair list")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such pair list")
    base = path.parent.resolve()
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    out = []
    for n, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        sep = "," if "," in text else "\t" if "\t" in text else " "  # a .csv list may use any of them too
        cells = [c.strip() for c in next(csv.reader([text], delimiter=sep, skipinitialspace=True))]
        cells = [c for c in cells if c]
        if not out and tuple(c.lower() for c in cells) in HEADERS:
            continue
        key = f"line{n:06d}"
        if len(cells) != 2:
            out.append(Pair(key, None, None, text, "", error=f"{path}:{n}: expected 2 image paths, got {len(cells)}"))
            continue
        p1, p3 = (str(base / c) if not Path(c).is_absolute() else c for c in cells)
        out.append(Pair(key, p1, p3, p1, p3))
    return out


def _frames(video: Path) -> Iterator:
    """A folder's image paths (decoded by the worker, so a bad frame fails only its pairs), or a
    video's decoded frames."""
    if video.is_dir():
        yield from (str(p) for p in sorted(p for p in video.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        return
    yield from video_frames(video)


def video_length(video) -> int | None:
    """Frames in a video file or image files in a folder; None when the file's header does not
    say. A video file that cannot be decoded is refused here, in one line (``data.decode``)."""
    video = Path(video)
    if video.is_dir():
        return sum(1 for p in video.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return frame_count(video)


def video_pairs(video, gap: int = 1) -> Iterator[Pair]:
    """Frames (t, t + gap) of a video file (decoded as a stream, gap + 1 frames in memory) or of a
    folder of frames (sorted by name), for every t. Keys are ``f<t>-f<t+gap>``. An image file, or
    a video or folder with no two frames ``gap`` apart, is refused."""
    gap = check_integer(gap, "gap", 1)
    video = Path(video)
    if not video.exists():
        raise FileNotFoundError(f"{video}: no such video or folder")
    if video.is_file() and video.suffix.lower() in IMAGE_SUFFIXES:
        raise ValueError(f"{video} is an image file, not a video; give a video file or a folder of frames")
    n = video_length(video)
    if n is not None and n <= gap:
        raise ValueError(f"{video} holds {n} frame(s): no two of them are {gap} apart")
    return _video_pairs(video, gap)


def _video_pairs(video: Path, gap: int) -> Iterator[Pair]:
    window: deque = deque(maxlen=gap + 1)
    for t, frame in enumerate(_frames(video)):
        window.append(frame)
        if len(window) == gap + 1:
            s = t - gap
            names = (window[0], window[-1]) if video.is_dir() else (f"{video}#{s}", f"{video}#{t}")
            yield Pair(f"f{s:06d}-f{t:06d}", window[0], window[-1], *names)
