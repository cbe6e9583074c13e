"""``Matches``: what ``mind_engine.match`` returns, as numpy arrays in the caller's image frame."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .checks import check_integer, check_real
from .texture import TEXTURE_MIN

SHOWN = 3  # matches shown at each end by repr / print
# ``Matches.refinement``: what the refinement stage (``mind_engine.refinement``) did to each match
RAW = 0  # the network's readout, unrefined (refine="none")
REFINED = 1  # moved by the refinement
FELL_BACK = 2  # the refinement lost it or moved it beyond its limit: the raw ends kept


@dataclass
class Matches:
    """Correspondences, as numpy arrays in the caller's image frame (x right, y down).

    ``pts1[i]`` in img1 and ``pts3[i]`` in img3 match through ``query[i]`` of the middle frame;
    ``score`` ranks them (the smaller of ``score1`` and ``score3``, the peak-to-mean ratios).
    ``texture`` says whether the images vary there at all (``mind_engine.texture``: grey levels
    per pixel in the weakest direction, the smaller of the two points'): the score does not, and
    matches of blank or ramp-like regions, below ``TEXTURE_MIN``, mean nothing (``textured()``).
    Every ``Matches`` mind_engine returns carries it; one made by hand may leave it None.

    The public calls refine the network's ends (``refine=``, ``mind_engine.refinement``):
    ``pts1_raw``, ``pts3_raw`` keep the readout, ``refinement`` says per match what happened
    (``RAW``, ``REFINED``, ``FELL_BACK``) and ``consistent`` whether it passed the
    forward-backward check (True where no check ran). The ranking (``order``, ``top``) puts
    failed checks last, then follows ``score``.
    """

    pts1: np.ndarray
    pts3: np.ndarray
    query: np.ndarray
    score: np.ndarray
    score1: np.ndarray
    score3: np.ndarray
    texture: np.ndarray | None = None
    pts1_raw: np.ndarray | None = None
    pts3_raw: np.ndarray | None = None
    refinement: np.ndarray | None = None
    consistent: np.ndarray | None = None

    @classmethod
    def from_peaks(cls, query: torch.Tensor, idx1: torch.Tensor, score1: torch.Tensor, idx3: torch.Tensor,
                   score3: torch.Tensor, width: int, offset1=None, offset3=None) -> "Matches":
        """From flat peak indices y * width + x (and optional sub-pixel offsets (N, 2)) and scores."""
        s1, s3 = score1.cpu().float().numpy(), score3.cpu().float().numpy()
        pts1, pts3 = flat_to_xy(idx1, width), flat_to_xy(idx3, width)
        if offset1 is not None:
            pts1, pts3 = (pts1 + offset1).astype(np.float32), (pts3 + offset3).astype(np.float32)
        return cls(pts1=pts1, pts3=pts3, query=query.cpu().float().numpy(), score=np.minimum(s1, s3),
                   score1=s1, score3=s3)

    def __repr__(self) -> str:
        """A summary, as numpy and torch print large arrays: the count, the score and texture
        ranges, and the first and last ``SHOWN`` matches (every array printed whole was 39 KB for
        704 matches)."""
        n = len(self)
        if n == 0:
            return "Matches(0 matches)"
        s = self.score
        lines = [f"Matches({n} match{'es' if n != 1 else ''}, score {s.min():.3g}..{s.max():.3g} (median "
                 f"{np.median(s):.3g})" + ("" if self.texture is None else
                                           f", {np.mean(self.texture < TEXTURE_MIN):.1%} below TEXTURE_MIN") + ";"]
        rows = list(range(n)) if n <= 2 * SHOWN else [*range(SHOWN), None, *range(n - SHOWN, n)]
        xy = lambda p: f"({p[0]:g}, {p[1]:g})"  # noqa: E731
        for i in rows:
            lines.append("  ..." if i is None else f"  query {xy(self.query[i])}: p1 {xy(self.pts1[i])}, "
                                                   f"p3 {xy(self.pts3[i])}, score {s[i]:.3g}")
        return "\n".join(lines) + ")"

    def __len__(self) -> int:
        return len(self.score)

    def __getitem__(self, index) -> "Matches":
        return Matches(*(None if (v := getattr(self, f)) is None else v[index] for f in self.__dataclass_fields__))

    def textured(self, min_texture: float = TEXTURE_MIN) -> "Matches":
        """The matches whose ``texture`` is at least ``min_texture`` (default ``TEXTURE_MIN``, 1
        grey level per pixel), in their order: those of blank and ramp-like regions dropped."""
        if self.texture is None:
            raise ValueError("these Matches carry no texture (made by hand, not returned by mind_engine)")
        return self[self.texture >= check_real(min_texture, "min_texture")]

    def order(self) -> np.ndarray:
        """Indices best first: matches that passed the forward-backward check (or had none)
        before those that failed it, then by score (``rank``)."""
        return rank(self.score, None if self.consistent is None else ~np.asarray(self.consistent, bool))

    def top(self, k: int) -> "Matches":
        """The ``k`` best matches in ``order`` (failed checks last, then by score; ties keep query
        order); all of them when there are fewer than ``k``."""
        return self[self.order()[:check_integer(k, "k", 0)]]

    def best_per_cell(self, cell: int) -> "Matches":
        """The best match (in ``top``'s order) of each ``cell`` x ``cell`` square of the middle
        frame (by query), best first: matches spread over the image, for a global model such as a
        homography, which the highest scores alone, clustered on one object, fit worse (issue 39)."""
        cell = check_integer(cell, "cell", 1)
        ranked = self.top(len(self))
        squares = np.floor(ranked.query.reshape(-1, 2) / cell).astype(np.int64)
        _, first = np.unique(squares, axis=0, return_index=True)
        return ranked[np.sort(first)]


def rank(score, flag=None) -> np.ndarray:
    """Indices best first: unflagged before flagged, then by score (higher first, NaN last),
    ties in input (query) order."""
    score = np.asarray(score, np.float64)
    key = np.where(np.isfinite(score) | (score == np.inf), -score, np.inf)
    flag = np.zeros(len(score), bool) if flag is None else np.asarray(flag, bool)
    return np.lexsort((np.arange(len(score)), key, flag))


def flat_to_xy(idx: torch.Tensor, width: int) -> np.ndarray:
    """Flat indices y * W + x -> (N, 2) float32 (x, y)."""
    idx = idx.cpu().long()
    return torch.stack([idx % width, idx // width], 1).float().numpy().reshape(-1, 2)
