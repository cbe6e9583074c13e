"""The public face: ``Engine`` over one image pair, and the functions that are each one Engine
call (``match``, ``match_subpixel``, ``match_fb``, ``jacobian_rows``). Every argument is checked
here (``mind_engine.checks``), before any network runs; the engine below (``mind_engine.engine``)
trusts what it is given.

``Engine`` is what every matching entry point goes through (the batch matcher, the evaluation,
the CLI too): the images are checked and padded once, the tier is built once (for tiers 1-3 that
runs the forward and caches the linearisation) the first time it is needed, and any number of
queries are then matched, their rows computed or their matches refined.
"""
from __future__ import annotations

import contextlib
import sys
import threading
import time
import warnings
from dataclasses import replace

import numpy as np
import torch

from . import backends  # noqa: F401  (registers the exported-graph tiers: backend="onnxruntime", "tensorrt")
from . import refinement
from .checks import (check_finest_level, check_integer, check_interval, check_levels, check_memory, check_queries,
                     check_radius, check_refine, check_stride, check_tier)
from .defaults import FINEST_LEVEL, LEVELS, RADIUS, REFINE, STRIDE
from .engine.refine import fb_flags, match_chunk
from .engine.budget import check_fits, estimate_bytes
from .engine.levels import level_radii
from .engine.matching import grid_queries, search_boxes
from .engine.pyramid import CoarseToFine, Level, coarse_to_fine, in_caller_frame
from .engine.tiers import make_tier, tier_class
from .hardware import choose_precision
from .images import image_pair, pad_to_multiple
from .matches import Matches
from .progress import progress as progress_bar
from .texture import match_texture
from .weights import resolve_model

CHUNK_BYTES = 256 << 20  # rows held at once per chunk of queries
EDGE_SHARE = 0.25  # at one scale, more matches than this on the edge of their search box: warn


class SearchEdgeWarning(UserWarning):
    """Many one-scale matches lie on the edge of their search box: their argmax stopped at the
    radius, because the motion (which the model follows) reaches beyond it. Motion beyond what
    the model follows at one scale leaves no such trace: the peaks stay near the query."""


def search_edge_share(m: Matches, radius: int | None) -> float:
    """The share of matches with an end (``pts1`` or ``pts3``) on the edge of the search square of
    ``radius`` around its query (the image's own border is not an edge of the radius: a box is
    clipped to the image); 0 for the whole image (None) or radius 0."""
    if not radius or len(m) == 0:
        return 0.0
    edge = [(np.abs(p - m.query) >= radius).any(axis=1) for p in (m.pts1, m.pts3)]
    return float((edge[0] | edge[1]).mean())


@contextlib.contextmanager
def quiet_search_edge():
    """No ``SearchEdgeWarning`` inside: for callers that ask for one scale on purpose (the
    evaluation's single-scale measurements, the motion probe, Fig. 4's one-scale maps, the
    backward pass of ``match_fb``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SearchEdgeWarning)
        yield


def warn_search_edge(m: Matches, radius: int | None) -> None:
    """One ``SearchEdgeWarning`` when more than ``EDGE_SHARE`` of one-scale matches lie on the
    edge of their search box: their argmax stopped at the radius, not at the motion."""
    share = search_edge_share(m, radius)
    if share > EDGE_SHARE:
        warnings.warn(f"{share:.0%} of the {len(m)} matches lie on the edge of their search box (radius {radius}) at "
                      f"one scale (levels=1): the motion reaches beyond the radius; levels='auto' (the default) "
                      f"matches coarse to fine (one scale follows a few px with the bundled model)",
                      SearchEdgeWarning, stacklevel=3)


class Engine:
    """MIND over the pair (img1, img3): ``match``, ``rows`` and ``refine`` at any queries.

    ``model``: a MindNet, a checkpoint path or "default" (None: the bundled default model, as
    "default"; ``mind_engine.weights.resolve_model``); ``tier`` picks the engine
    (``mind_engine.engine.tiers``; "auto": the fastest exact one of the backend), ``memory`` bounds its working
    memory in bytes, ``backend`` runs it through torch or an exported graph ("onnxruntime",
    "tensorrt"); ``precision`` "bf16" or "fp16" stores the windowed tiers' state and windows in
    16 bits with fp32 accumulation (faster where the device has 16-bit units, not exact;
    ``mind_engine.engine.precision``); "auto" is bf16 on a device with bf16 units, fp32 elsewhere,
    and ``self.precision`` says which (``mind_engine.hardware``; bf16 asked for on a CPU without
    them warns once: it is emulated there, about 20x slower).
    Tier, backend, precision and device names are case-insensitive; every argument is checked
    here (``mind_engine.checks``), before any network runs: the engine below trusts them.
    """

    def __init__(self, img1, img3, model=None, device=None, tier: str = "auto", memory: int | None = None,
                 backend: str = "torch", precision: str = "fp32"):
        self.tier_name, self.backend, asked = check_tier(tier, backend, precision)
        self.model, self.device = resolve_model(model, device)
        self.precision, self.precision_reason = choose_precision(
            asked, self.device, tier_class(self.tier_name, self.backend).precisions)
        self.memory = check_memory(memory, self.device)
        self.t1, self.t3 = image_pair(img1, img3, self.device)
        self.hw = tuple(self.t1.shape[-2:])
        self._tier = None
        self._tier_lock = threading.Lock()  # threads sharing this Engine build its tier once

    @property
    def padded_hw(self) -> tuple[int, int]:
        m = self.model.config.multiple
        return tuple(-(-s // m) * m for s in self.hw)

    def memory_needed(self) -> int:
        """Estimated peak bytes of matching this pair (``mind_engine.engine.budget``)."""
        tier = tier_class(self.tier_name, self.backend)
        working = tier.working_memory(self.memory, self.device)
        return estimate_bytes(self.model, self.padded_hw, working, 0 if tier.windowed else CHUNK_BYTES)

    @property
    def tier(self):
        """The tier over the pair padded to the network's multiple, built on first use, after
        checking that the pair fits in the device's free memory."""
        with self._tier_lock:
            if self._tier is None:
                check_fits(self.memory_needed(), self.device, self.hw)
                m = self.model.config.multiple
                p1, _ = pad_to_multiple(self.t1[None], m)
                p3, _ = pad_to_multiple(self.t3[None], m)
                with torch.no_grad():
                    self._tier = make_tier(self.tier_name, self.model, p1, p3, memory=self.memory,
                                           backend=self.backend, precision=self.precision)
            return self._tier

    @property
    def chunk(self) -> int:
        """Queries per chunk: the rows of one chunk within CHUNK_BYTES."""
        h, w = self.padded_hw
        return max(1, CHUNK_BYTES // (6 * 4 * h * w))

    def queries(self, queries=None, stride: int = STRIDE) -> torch.Tensor:
        """(N, 2) int64 (x, y): a grid of ``stride`` or the caller's points, checked (``stride``
        too, when points are given: a bad value is a mistake either way)."""
        stride = check_stride(stride)
        if queries is None:
            return grid_queries(self.hw, stride)
        return torch.from_numpy(check_queries(queries, self.hw)).long()

    def _plan(self, n: int, what: str, how: str) -> None:
        """The plan of a run, one line on stderr: queries, ``how`` (the chunks, the levels), device,
        tier, precision, memory estimate."""
        why = f", {self.precision_reason}" if self.precision_reason else ""
        print(f"mind_engine: {what} {n} queries of a {self.hw[1]}x{self.hw[0]} pair{how} on {self.device} "
              f"(tier {self.tier_name}, {self.precision}{why}), about {self.memory_needed() / 2**30:.2f} GiB; "
              f"a larger stride or a smaller radius is faster", file=sys.stderr)

    def _chunks(self, n: int, step: int, progress: bool | None, what: str, plan: bool = True):
        """Chunk starts, with progress on stderr when ``progress`` (None: many chunks on a terminal;
        ``mind_engine.progress``: a bar on a terminal, else a line every 5 s), preceded by the
        plan when ``plan`` (a pyramid prints its own, once)."""
        starts = range(0, n, step)
        show = progress if progress is not None else (len(starts) > 4 and sys.stderr.isatty())
        if show and plan:
            self._plan(n, what, f" in {len(starts)} chunk(s)")
        bar = progress_bar(starts, desc=f"{what} ({self.tier_name})", unit="chunk", show=bool(show))
        return _with_estimate(bar, len(starts)) if show and len(starts) > 1 else bar

    def match(self, queries=None, stride: int = STRIDE, radius: int | None = RADIUS,
              progress: bool | None = None, levels: int | str = LEVELS, refine: str = REFINE,
              finest_level: int | str = FINEST_LEVEL) -> Matches:
        """Match at the caller's ``queries`` (N, 2) or on a grid of ``stride``; ``radius`` restricts
        each peak search to the square of that radius around its query (None: whole image).
        ``levels`` "auto" (the default) or k > 1: coarse to fine (``coarse_to_fine``, where
        ``finest_level`` 1 stops MIND one level early; "auto": when a photometric refinement
        follows, ``checks.check_finest_level``); 1: one scale, the paper's matcher, which
        warns (``SearchEdgeWarning``) when many peaks lie on the edge of their search box.
        ``refine``: the refinement stage after the network (``mind_engine.refinement``; the default
        ``mind_engine.defaults.REFINE``), "none" the readout itself."""
        method = check_refine(refine)
        radius, n, finest = self._depth(radius, levels, method, finest_level)
        if method == "peak":
            if finest:
                raise ValueError("refine='peak' fits the finest MIND level's own peaks: it needs finest_level=0, "
                                 f"got {finest_level!r}")
            integer, peak = self.refine(queries, stride, radius, both=True, progress=progress, levels=levels)
            return self.refined(integer, method, peak)
        return self.refined(self._readout(queries, stride, radius, progress, levels, n, finest), method)

    def finest_level(self, refine: str = REFINE, finest_level: int | str = FINEST_LEVEL, levels: int | str = LEVELS,
                     radius: int | None = RADIUS) -> int:
        """The pyramid level MIND stops at in ``match`` with these arguments on this pair (0: the
        caller's resolution): ``finest_level`` "auto" resolved for ``refine``
        (``checks.check_finest_level``), for callers that run the readout and the refinement apart
        (``match(refine="none", finest_level=...)``, then ``refined``)."""
        return self._depth(radius, levels, check_refine(refine), finest_level)[2]

    def _depth(self, radius, levels, method: str, finest_level) -> tuple[int | None, int, int]:
        """``match``'s (radius, pyramid depth, finest level), checked, for the checked ``method``."""
        radius = check_radius(radius)
        n = check_levels(levels, self.hw, radius)
        return radius, n, check_finest_level(finest_level, n, method)

    def refined(self, raw: Matches, method: str, peak: Matches | None = None) -> Matches:
        """The readout ``raw`` through the refinement stage (``mind_engine.refinement.apply``, the
        one entry of every public call), its texture measured at the final points."""
        return self.textured(refinement.apply(self.t1, self.t3, raw, method, peak=peak))

    def _readout(self, queries, stride: int, radius: int | None, progress: bool | None, levels: int | str, n: int,
                 finest_level: int) -> Matches:
        """The network's matches, unrefined: ``match(refine="none")``, for ``match``'s checked
        arguments (``levels`` as given, ``n`` the depth it resolved to, ``finest_level`` resolved)."""
        if n != 1:
            return self.coarse_to_fine(queries, stride, radius, levels, progress, finest_level=finest_level).matches
        m = self._one_scale(self.queries(queries, stride), radius, progress)  # texture: measured by ``refined``
        if check_levels(levels) == 1:  # asked for one scale (not "auto" resolved to one)
            warn_search_edge(m, radius)
        return m

    def _one_scale(self, q: torch.Tensor, radius: int | None, progress: bool | None, plan: bool = True,
                   what: str = "matching") -> Matches:
        """MIND at this pair's own scale at the (N, 2) queries ``q``, chunk by chunk (no texture:
        the public calls measure it once, on the caller's pair)."""
        boxes = search_boxes(q, radius, self.hw)
        if len(q) == 0:  # nothing to match: no network runs
            none = torch.zeros(0, dtype=torch.long)
            return Matches.from_peaks(q, none, none.float(), none, none.float(), self.hw[1])
        parts1, parts3 = [], []
        for s in self._chunks(len(q), self.chunk, progress, what, plan):
            r1, r3 = self.tier.match(q[s:s + self.chunk].to(self.device), boxes[s:s + self.chunk], self.hw)
            parts1.append([t.cpu() for t in r1])
            parts3.append([t.cpu() for t in r3])
        (idx1, _, s1), (idx3, _, s3) = ([torch.cat(c) if c else torch.zeros(0) for c in zip(*parts)]
                                        for parts in (parts1, parts3))
        return Matches.from_peaks(q, idx1, s1, idx3, s3, self.hw[1])

    def textured(self, m: Matches) -> Matches:
        """``m`` with its ``texture`` measured on this pair (``mind_engine.texture``): from the
        images and the points alone, so every tier and backend gives the same."""
        return replace(m, texture=match_texture(self.t1, self.t3, m.pts1, m.pts3))

    def coarse_to_fine(self, queries=None, stride: int = STRIDE, radius: int | None = RADIUS,
                       levels: int | str = LEVELS, progress: bool | None = None, subpixel: bool = False,
                       chunk: int | None = None, finest_level: int = 0) -> CoarseToFine:
        """MIND through an image pyramid of ``levels`` (an integer, or "auto": enough that the search
        range is a few pixels at the coarsest; ``mind_engine.engine.pyramid``): the matches at the
        queries, their finest-level scores and the dense motion field after every level. Each
        level runs an Engine of this one's model, tier, memory, backend and precision; the plan
        is printed once for the whole pyramid. ``subpixel``: the finest level refines its peaks on
        its warped pair (``refine``, ``chunk`` queries per pass) and the refined points are mapped
        back through the warps as integer points are; ``integer`` then holds the integer ones,
        which equal ``match``'s. With the caller's ``queries`` the coarse levels match only around
        them (``mind_engine.engine.pruning``). ``finest_level`` 1: MIND stops at level 1 (half the
        resolution, about a quarter of the work) and each query reads its match from level 1's
        field, bilinear, with the scores of the nearest level-1 match (``pyramid.read_from_field``);
        not with ``subpixel``."""
        q = self.queries(queries, stride)
        radius = check_radius(radius)
        n = check_levels(levels, self.hw, radius)
        if check_finest_level(finest_level, n) and subpixel:
            raise ValueError("subpixel refines the finest MIND level's peaks; finest_level=1 reads the matches from "
                             "a field: pass finest_level=0 with subpixel")
        chunks = -(-len(q) // self.chunk)
        if progress or (progress is None and chunks > 4 and sys.stderr.isatty()):
            coarser = f"levels {n - 1} (coarsest) to 1" if n > 2 else "level 1"
            last = ("MIND stops at level 1; level 0 reads its field" if finest_level
                    else f"then level 0 in {chunks} chunk(s)")
            self._plan(len(q), "matching", f" coarse to fine ({n} levels, search radius "
                       f"{' > '.join(map(str, level_radii(n, radius)[::-1]))} px; {coarser} in chunks of their own, "
                       f"{last})")
        integer = []

        def mind(level: Level) -> Matches:
            engine = Engine(level.img1, level.img3, model=self.model, device=self.device, tier=self.tier_name,
                            memory=self.memory, backend=self.backend, precision=self.precision)
            what = f"matching level {level.index}"
            if not subpixel or level.index > 0:
                return engine._one_scale(level.queries, level.radius, progress, plan=False, what=what)
            whole, refined = engine._refine_one_scale(level.queries, level.radius, chunk or engine.chunk, progress,
                                                      plan=False, what=what)
            integer.append(in_caller_frame(whole, level.field))
            return refined

        res = coarse_to_fine(self.t1, self.t3, q, radius, n, mind, grid_stride=stride if queries is None else None,
                             finest_level=finest_level)
        res = replace(res, matches=self.textured(res.matches))  # on this pair, not the finest warped one
        return replace(res, integer=self.textured(integer[0])) if integer else res

    def rows(self, queries) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows d sum_c out[c, y, x] / d I1 and / d I3 for each (x, y) query, as two
        (N, 3, H, W) float32 tensors in the caller's frame (N full maps in memory)."""
        q = self.queries(queries)
        if len(q) == 0:
            empty = self.t1.new_zeros((0, 3, *self.hw))
            return empty, empty
        g1, g3 = self.tier.rows(q.to(self.device))
        h, w = self.hw
        return g1[:, :, :h, :w], g3[:, :, :h, :w]

    def refine(self, queries=None, stride: int = STRIDE, radius: int | None = RADIUS, chunk: int | None = None,
               both: bool = False, progress: bool | None = None, levels: int | str = LEVELS):
        """``match`` with sub-pixel match points (``mind_engine.engine.refine``): each refined point
        lies within half a pixel of the integer point ``match`` gives; scores are identical.
        ``chunk``: queries per pass (None: ``self.chunk``, the rows of one within CHUNK_BYTES).
        ``both``: return (integer Matches, equal to ``match``'s, refined Matches) from one pass.
        ``levels`` > 1 or "auto": coarse to fine, refined at the finest level
        (``coarse_to_fine(subpixel=True)``); there the half-pixel bound holds on the warped pair."""
        chunk = check_integer(chunk, "chunk", 1, none=True)
        radius = check_radius(radius)
        if check_levels(levels, self.hw, radius) != 1:
            res = self.coarse_to_fine(queries, stride, radius, levels, progress, subpixel=True, chunk=chunk)
            return (res.integer, res.matches) if both else res.matches
        integer, refined = self._refine_one_scale(self.queries(queries, stride), radius, chunk or self.chunk, progress)
        return (self.textured(integer), self.textured(refined)) if both else self.textured(refined)

    def _refine_one_scale(self, q: torch.Tensor, radius: int | None, step: int, progress: bool | None,
                          plan: bool = True, what: str = "refining") -> tuple[Matches, Matches]:
        """(integer, refined) Matches at this pair's own scale at the (N, 2) queries ``q``, ``step``
        queries per pass (no texture, as ``_one_scale``)."""
        boxes = search_boxes(q, radius, self.hw)
        res = {1: [], 3: []}
        for s in self._chunks(len(q), step, progress, what, plan):
            r1, r3 = match_chunk(self.tier, q[s:s + step].to(self.device), boxes[s:s + step], self.hw)
            res[1].append(r1)
            res[3].append(r3)
        idx, scores, off = {}, {}, {}
        for k in (1, 3):
            idx[k] = torch.cat([r[0].cpu() for r in res[k]]) if res[k] else torch.zeros(0, dtype=torch.long)
            scores[k] = torch.cat([r[2].cpu() for r in res[k]]) if res[k] else torch.zeros(0)
            off[k] = np.concatenate([r[3] for r in res[k]]) if res[k] else np.zeros((0, 2), np.float32)
        args = (q, idx[1], scores[1], idx[3], scores[3], self.hw[1])
        return Matches.from_peaks(*args), Matches.from_peaks(*args, offset1=off[1], offset3=off[3])


def _with_estimate(bar, chunks: int):
    """Yield from ``bar``; once the first chunk is done (the tier built and one chunk matched),
    say how long the whole run should take, from that measurement."""
    t0 = time.perf_counter()
    for i, start in enumerate(bar):
        if i == 1:
            first = time.perf_counter() - t0
            bar.write(f"mind_engine: the first chunk took {first:.1f} s, set-up included: all {chunks} "
                      f"should take about {first * chunks:.0f} s or less", file=sys.stderr)
        yield start


def match(img1, img3, stride: int = STRIDE, radius: int | None = RADIUS, model=None, device=None,
          queries=None, tier: str = "auto", progress: bool | None = None, memory: int | None = None,
          backend: str = "torch", levels: int | str = LEVELS, precision: str = "fp32", refine: str = REFINE,
          finest_level: int | str = FINEST_LEVEL) -> Matches:
    """Match img1 to img3 through the middle frame the network interpolates.

    Queries are a grid of ``stride`` (default) or the caller's (N, 2) ``queries``; ``radius``
    restricts each peak search to the square of that radius around its query (None: whole
    image); the defaults are ``mind_engine.defaults``'. ``tier`` picks the engine (``mind_engine.engine.tiers``; "auto": the fastest exact one),
    ``memory`` bounds its working memory in bytes, ``backend`` runs it through torch or an exported
    graph ("onnxruntime", "tensorrt"), ``progress`` shows a bar (default: when many chunks run on a
    terminal). An empty query set (or a grid that misses a tiny image) gives an empty ``Matches``.
    ``levels``: "auto" (the default) or k > 1 matches coarse to fine through an image pyramid, for
    motions larger than the network follows at one scale (``mind_engine.engine.pyramid``;
    ``Engine.coarse_to_fine`` also returns the motion fields); 1 is the paper's single-scale
    matcher, which warns (``SearchEdgeWarning``) when many peaks stop at the search box's edge.
    ``finest_level`` 1 stops MIND one pyramid level early and reads the matches from that level's
    field (``Engine.coarse_to_fine``; about a fifth of the network's work); "auto" (the default,
    ``mind_engine.defaults.FINEST_LEVEL``) does so when a photometric refinement ("dis", "lk")
    finishes the last pixels, and runs MIND down to the caller's resolution for "none" and "peak".
    With ``queries`` the coarse levels match only around them (``mind_engine.engine.pruning``).

    ``device``: the one asked for, else ``model``'s device, else CUDA when available, else the CPU
    (the same rule as ``load_model`` and ``interpolate``). ``model`` is never changed: a model on
    another device or in training mode is copied. Every argument is checked before any network
    runs (``mind_engine.checks``); a pair too large for the device's free memory is refused with
    the estimate (``mind_engine.engine.budget``). ``model``: a MindNet, a checkpoint path or
    "default" (None: the bundled model). ``precision`` "bf16" (or "fp16" on a GPU) runs the
    windowed tiers in 16 bits: faster where the device has 16-bit units, not exact; on a CPU
    without bf16 units it is emulated, about 20x slower, and warns once; "auto" is bf16 where the
    device has bf16 units, fp32 elsewhere (``Engine``).

    ``refine``: the refinement stage after the network (``mind_engine.refinement``; the default is
    ``mind_engine.defaults.REFINE``): "dis" starts OpenCV's DIS flow from MIND's matches, "lk"
    refines each end with OpenCV's LK started at MIND's, "peak" fits a quadratic to the
    sensitivity peak, "none" is the network's readout itself, the paper's. Matches that fail the
    forward-backward check rank last (``Matches.top``). ``refine="none"`` is the network's readout
    bit for bit, through the whole pyramid.
    """
    engine = Engine(img1, img3, model=model, device=device, tier=tier, memory=memory, backend=backend,
                    precision=precision)
    return engine.match(queries, stride, radius, progress, levels, refine, finest_level)


def jacobian_rows(model, img1, img3, queries, device=None, tier: str = "auto", memory: int | None = None,
                  backend: str = "torch"):
    """The rows d sum_c out[c, y, x] / d I1 and / d I3 for each (x, y) query, as two
    (N, 3, H, W) float32 tensors in the caller's frame (for inspection: N full maps in memory).
    Devices, checks and the caller's model as in ``match``."""
    return Engine(img1, img3, model=model, device=device, tier=tier, memory=memory, backend=backend).rows(queries)


def match_subpixel(img1, img3, stride: int = STRIDE, radius: int | None = RADIUS, model=None, device=None, queries=None,
                   tier: str = "auto", chunk: int | None = None, both: bool = False, progress: bool | None = None,
                   memory: int | None = None, backend: str = "torch", levels: int | str = LEVELS,
                   precision: str = "fp32") -> Matches:
    """``match(refine="peak")``: sub-pixel match points from one pass (``mind_engine.engine.refine``),
    with ``chunk`` (queries per pass) and ``both`` (the integer readout too, as (integer Matches,
    refined)), which the one option of ``match`` does not take. ``levels`` as in ``match``:
    coarse to fine by default, the finest level's peaks refined on its warped pair."""
    engine = Engine(img1, img3, model=model, device=device, tier=tier, memory=memory, backend=backend,
                    precision=precision)
    integer, peak = engine.refine(queries, stride, radius, chunk, True, progress, levels)
    refined = engine.refined(integer, "peak", peak)
    return (integer, refined) if both else refined


def match_fb(img1, img3, stride: int = STRIDE, radius: int | None = RADIUS, model=None, device=None, queries=None,
             tier: str = "auto", tol: float = 1.0, forward: Matches | None = None, subpixel: bool = False,
             memory: int | None = None, backend: str = "torch", levels: int | str = LEVELS, precision: str = "fp32",
             refine: str = REFINE):
    """MIND with the network's forward-backward flag (``mind_engine.engine.refine.fb_flags``):
    returns (forward Matches, flags (N,) bool, True where either end moves by more than ``tol`` px
    when the pair is matched swapped at the same queries), at twice the network's cost. (The
    refinement's own check, without the network, is in every match's ``consistent``.)

    ``forward`` reuses matches already made img1 -> img3 (their queries are used for the
    backward pass); ``refine`` (as in ``match``) refines both passes before comparing them;
    ``subpixel=True`` is ``refine="peak"``. ``levels`` and ``precision`` as in ``match``, for both
    passes. The backward pass never warns: the forward one has said what there is to say.
    """
    tol = check_interval(tol, "tol", 0.0)
    method = "peak" if subpixel else check_refine(refine)
    common = dict(radius=radius, model=model, device=device, tier=tier, memory=memory, backend=backend,
                  precision=precision, levels=levels, refine=method)
    if forward is None:
        forward = match(img1, img3, stride=stride, queries=queries, **common)
    with quiet_search_edge():
        backward = match(img3, img1, queries=forward.query, **common)
    return forward, fb_flags(forward, backward, tol)
