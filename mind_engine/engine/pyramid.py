"""Coarse-to-fine MIND: any motion through an image pyramid, each level finding a small residual.

A network trained on small motions matches small motions, and the search radius alone does not
make it see further. So, as pyramidal KLT and SPyNet do, the pair is matched at ``levels``
scales, coarsest first (level ``k`` is the pair downsampled by ``2**k``, area averaging):

1. at the coarsest level MIND runs on the downsampled pair with the requested search range
   scaled down (``radius / 2**k``, or the whole image for ``radius=None``), on a grid of queries
   every ``LEVEL_STRIDE`` pixels;
2. its matches become a symmetric motion field ``m`` at the middle frame, ``m(q) = p3 - p1``:
   the confident ones (the best ``KEEP_SCORE`` by score) that are consistent (``p1 + p3`` within
   ``MIDPOINT_PX`` of ``2 q``: a middle-frame query sits half way between its two ends) are
   interpolated robustly (``densify``);
3. at each finer level the field is upsampled (doubled), frame 1 is resampled at ``q - m(q)/2``
   and frame 3 at ``q + m(q)/2`` (bilinear), MIND finds the residual on the warped pair within
   ``RESIDUAL_RADIUS``, and its points are mapped back through the warps to the level's own
   images: ``P1 = p1 - m(p1)/2``, ``P3 = p3 + m(p3)/2``;
4. the finest level does this at the caller's queries: its points are the matches, its MIND
   scores the scores. A sub-pixel matcher there (``Engine.coarse_to_fine(subpixel=True)``)
   refines the integer peaks on the warped pair it matched (the quadratic of
   ``refine.quadratic_offsets``), and the refined points are mapped back through the warps by
   the same ``in_caller_frame`` as integer ones. With ``finest_level=1`` MIND stops at level 1
   instead, and the caller's queries are read from its field (``read_from_field``).

What the result means: at every level the rows are exact for the pair that level sees (the
warped pair), so each level's match is an exact MIND match of the residual; the composed match
is MIND's answer under the assumption that the coarser levels' field is right near each query.
Where it is not -- occlusions, motion discontinuities (the field is smoothed across about one
grid cell per level), textureless regions (no confident match; the field is filled in from the
neighbours) -- the residual may exceed ``RESIDUAL_RADIUS`` and the finest match is then the best
point within that radius, not the true one. The score is the finest level's peak-to-mean ratio
on the warped pair: comparable across queries of one pair, but it does not say whether the
coarser levels were right. A composed point may lie up to about ``RESIDUAL_RADIUS * 2**levels``
pixels beyond the requested radius.

With the caller's own queries (not a grid), each coarse level matches only the cells of its grid
that the finer level's queries read (``pruning``: their search and score windows, the
interpolations between, the outlier test's neighbours and ``pruning.CONTEXT_CELLS`` for the
network's context); the field elsewhere is filled in from those. What stays equal to the dense
run at the queries: every link of that chain is local, except two. The best ``KEEP_SCORE`` by score
is taken among the matched cells, not the whole grid, so a cell near the threshold may be kept in
one run and not the other; and a level's forward reads its whole warped pair, which differs far
from the queries. Where every score is equal (the true-residual tests) the pruned run is the dense
one bit for bit; with the threshold out of the way a random network gives the dense run's points
and its scores to 1e-3 (``tests/test_pyramid.py``); with the bundled model and the threshold, see
``pruning.CONTEXT_CELLS`` and ``bench/latency.py --only queries``. Queries that need every cell (a dense
set) run exactly the dense computation. A grid (``grid_stride``) is never pruned.

The consistency test is the symmetric one, free from the matches themselves, not a second
matching pass backwards (``refine.match_fb``): that pass would double the cost of every level.

The per-level matcher is a parameter (``LevelMatcher``): ``Engine`` passes MIND; the tests pass
a matcher that returns the true residual, which tests this arithmetic apart from any model.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .densify import densify
from .levels import LEVEL_STRIDE, RESIDUAL_RADIUS, level_radii
from .matching import grid_axes, grid_queries
from .pruning import needed_grids
from .windows import SCORE_HALF

KEEP_SCORE = 0.5  # the best half of a level's consistent matches make its field
MIDPOINT_PX = 2.0  # |p1 + p3 - 2 q| above this: the match is not symmetric about its query


@dataclass
class Level:
    """What a level's matcher is given: the warped pair at that level, the field it was warped
    with (pixels of that level, (h, w, 2) as (dx, dy); zero at the coarsest), the queries and the
    search radius. Level 0 is the caller's resolution."""

    index: int
    img1: torch.Tensor  # (3, h, w), frame 1 resampled at q - field(q) / 2
    img3: torch.Tensor  # (3, h, w), frame 3 resampled at q + field(q) / 2
    field: torch.Tensor
    queries: torch.Tensor  # (N, 2) int64 (x, y)
    radius: int | None


LevelMatcher = Callable[[Level], "Matches"]  # ``mind_engine.matches.Matches`` in the warped images' pixels


@dataclass
class CoarseToFine:
    """``matches`` at the caller's queries, in the caller's frame; ``fields`` the dense motion field
    (h, w, 2) (dx, dy) = p3 - p1 after each level MIND ran at (down to ``finest_level``), coarsest
    first, each in its own level's pixels (level 0's only when the queries were a grid; else it is
    the field level 0 was warped with); ``levels`` and ``radii`` as run; ``integer``, where the finest level
    refined its peaks to sub-pixel (set by that caller), those integer peaks mapped back alike."""

    matches: Matches
    fields: list[np.ndarray]
    levels: int
    radii: list[int | None]
    integer: Matches | None = None


def downsample(img: torch.Tensor) -> torch.Tensor:
    """(3, h, w) -> (3, ceil(h/2), ceil(w/2)) by area averaging."""
    h, w = img.shape[-2:]
    return F.interpolate(img[None], size=(-(-h // 2), -(-w // 2)), mode="area")[0]


def sample(field: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """(h, w, C) map sampled bilinearly at (N, 2) (x, y) pixel positions -> (N, C) on the map's
    device, edges replicated."""
    h, w = field.shape[:2]
    norm = torch.stack([2 * pts[:, 0] / max(w - 1, 1) - 1, 2 * pts[:, 1] / max(h - 1, 1) - 1], -1)
    out = F.grid_sample(field.permute(2, 0, 1)[None], norm.view(1, 1, -1, 2).to(field.device, field.dtype),
                        mode="bilinear", padding_mode="border", align_corners=True)
    return out[0, :, 0].T


def pixel_grid(hw: tuple[int, int]) -> torch.Tensor:
    """(h * w, 2) float32 (x, y) of every pixel, rows first."""
    ys, xs = torch.meshgrid(torch.arange(hw[0], dtype=torch.float32), torch.arange(hw[1], dtype=torch.float32),
                            indexing="ij")
    return torch.stack([xs, ys], -1).view(-1, 2)


def warp(img: torch.Tensor, field: torch.Tensor, sign: float) -> torch.Tensor:
    """(3, h, w) image resampled at ``q + sign * field(q)`` for every pixel q (bilinear, edges
    replicated): frame 1 with sign -1/2, frame 3 with +1/2."""
    h, w = img.shape[-2:]
    pts = pixel_grid((h, w)) + sign * field.reshape(-1, 2)
    return sample(img.permute(1, 2, 0), pts).T.reshape(-1, h, w)


def upsample_field(field: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """A level's (h, w, 2) field -> the next finer level's (hw), in its pixels: pixel x of the finer
    level is (x - 0.5) / 2 of the coarser one, and a motion doubles."""
    return 2 * sample(field, (pixel_grid(hw) - 0.5) / 2).view(*hw, 2)


def compose(m: Matches, field: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Matches on the pair warped with ``field`` -> their points in the level's own images:
    ``P1 = p1 - field(p1)/2``, ``P3 = p3 + field(p3)/2`` (not clipped: a point the motion takes out
    of view still says how the field moves there)."""
    p1, p3 = torch.from_numpy(np.asarray(m.pts1, np.float32)), torch.from_numpy(np.asarray(m.pts3, np.float32))
    return p1 - sample(field, p1) / 2, p3 + sample(field, p3) / 2


def clip_points(pts: torch.Tensor, hw: tuple[int, int]) -> np.ndarray:
    """(N, 2) points clipped to an (h, w) image, as float32 numpy."""
    h, w = hw
    return torch.minimum(torch.maximum(pts, torch.zeros(2)), torch.tensor([w - 1.0, h - 1.0])).numpy()


def in_caller_frame(m: Matches, field: torch.Tensor) -> Matches:
    """The finest level's matches on the pair warped with ``field`` (integer or refined points)
    -> the caller's: composed through the warps (``compose``), clipped to the image; scores kept."""
    pts1, pts3 = compose(m, field)
    hw = tuple(field.shape[:2])
    return replace(m, pts1=clip_points(pts1, hw), pts3=clip_points(pts3, hw))


def kept_for_field(m: Matches, queries: torch.Tensor) -> torch.Tensor:
    """(N,) bool: the matches a field is made of -- symmetric about their query (``MIDPOINT_PX``)
    and, of those, the best ``KEEP_SCORE`` by score."""
    mid = torch.from_numpy(np.asarray(m.pts1 + m.pts3, np.float32)) - 2 * queries.float()
    score = torch.from_numpy(np.asarray(m.score, np.float32))
    ok = (mid.norm(dim=1) <= MIDPOINT_PX) & torch.isfinite(score)
    if ok.sum() > 1:
        ok &= score >= torch.quantile(score[ok], 1 - KEEP_SCORE)
    return ok


def grid_field(motion: torch.Tensor, kept: torch.Tensor, hw: tuple[int, int], stride: int,
               cells: torch.Tensor | None = None) -> torch.Tensor:
    """Motions at the grid queries of ``stride`` of an (h, w) level (in ``grid_queries`` order;
    only at the ``cells`` of the (gh, gw) mask when one is given, the others holes) -> the dense
    (h, w, 2) field (``densify``)."""
    ys, xs = grid_axes(hw, stride)
    if len(ys) * len(xs) == 0:
        return torch.zeros(*hw, 2)
    if cells is not None:
        full, known = torch.zeros(cells.numel(), 2), torch.zeros(cells.numel(), dtype=torch.bool)
        full[cells.flatten()], known[cells.flatten()] = motion, kept
        motion, kept = full, known
    return densify(motion.view(len(ys), len(xs), 2), kept.view(len(ys), len(xs)), stride // 2, stride, hw)


def level_queries(hw: tuple[int, int], cells: torch.Tensor | None) -> torch.Tensor:
    """A coarse level's queries: its ``LEVEL_STRIDE`` grid, or the ``cells`` of it that are needed."""
    q = grid_queries(hw, LEVEL_STRIDE)
    return q if cells is None else q[cells.flatten()]


def read_from_field(m: Matches, queries: torch.Tensor, field: torch.Tensor, hw: tuple[int, int],
                    cells: torch.Tensor | None) -> Matches:
    """``finest_level=1``: the caller's (N, 2) ``queries`` of an ``hw`` level 0, read from level 1's
    ``field`` and its matches ``m`` (at its grid queries, or at the grid's ``cells``): the motion
    bilinear at each query (``upsample_field``'s arithmetic, at the queries only), ``p1 = q - m(q)/2``,
    ``p3 = q + m(q)/2`` clipped to the image; the scores of the level-1 match nearest the query
    (its grid cell by rounding; that cell is always among the needed ones)."""
    q = queries.float()
    at1 = (q - 0.5) / 2  # the queries in level 1's pixels
    motion = 2 * sample(field, at1)
    ys, xs = grid_axes(tuple(field.shape[:2]), LEVEL_STRIDE)
    ix, iy = (((at1[:, i] - LEVEL_STRIDE // 2) / LEVEL_STRIDE).round().clamp(0, len(axis) - 1).long()
              for i, axis in ((0, xs), (1, ys)))
    nearest = iy * len(xs) + ix
    if cells is not None:
        nearest = (cells.flatten().cumsum(0) - 1)[nearest]  # grid cell -> its place among the matched ones
    return replace(m[nearest.numpy()], pts1=clip_points(q - motion / 2, hw), pts3=clip_points(q + motion / 2, hw),
                   query=q.numpy(), texture=None)


def coarse_to_fine(img1: torch.Tensor, img3: torch.Tensor, queries: torch.Tensor, radius: int | None, levels: int,
                   matcher: LevelMatcher, grid_stride: int | None = None, finest_level: int = 0) -> CoarseToFine:
    """The module docstring's steps on a (3, H, W) pair: ``queries`` (N, 2) int64 at the finest
    level, ``levels`` >= 1 (checked by the caller), ``matcher`` MIND or a stand-in.
    ``grid_stride``: the queries are ``grid_queries`` of that stride (the finest field can then be
    densified from them too; every coarse level matches its whole grid); else the coarse levels
    match only the cells the queries need (``pruning``). ``finest_level`` 1 (with ``levels`` >= 2,
    checked by the caller): MIND stops at level 1 and the queries are read from its field."""
    pyr1, pyr3 = [img1.float()], [img3.float()]
    for _ in range(levels - 1):
        pyr1.append(downsample(pyr1[-1]))
        pyr3.append(downsample(pyr3[-1]))
    hws = [tuple(p.shape[-2:]) for p in pyr1]
    radii = level_radii(levels, radius)
    reaches = [0 if k < finest_level else (radii[k] or 0) + SCORE_HALF for k in range(levels)]
    cells = [None] * levels if grid_stride is not None else needed_grids(queries, hws, reaches)
    field = torch.zeros(*hws[-1], 2)
    fields = []
    for k in reversed(range(finest_level, levels)):
        if k < levels - 1:
            field = upsample_field(field, hws[k])
        q = queries if k == 0 else level_queries(hws[k], cells[k])
        level = Level(k, warp(pyr1[k], field, -0.5), warp(pyr3[k], field, 0.5), field, q, radii[k])
        m = matcher(level)
        pts1, pts3 = compose(m, field)
        if k > 0:
            field = grid_field(pts3 - pts1, kept_for_field(m, q), hws[k], LEVEL_STRIDE, cells[k])
        elif grid_stride is not None:
            field = grid_field(pts3 - pts1, kept_for_field(m, q), hws[k], grid_stride)
        fields.append(field.numpy().copy())
    if finest_level == 1:
        return CoarseToFine(read_from_field(m, queries, field, hws[0], cells[1]), fields, levels, radii[::-1])
    return CoarseToFine(in_caller_frame(m, level.field), fields, levels, radii[::-1])
