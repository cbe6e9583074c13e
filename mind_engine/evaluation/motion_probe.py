"""The motion probe: does the network move content, and by how much? (``bench/motion_probe.py``)

A loss that falls says little: a network that blends its two inputs interpolates tolerably and
matches nothing (its Jacobian rows peak at the query itself). The probe measures motion
directly. Held-out still images (``SYNTHETIC_VAL_IMAGES``, never training textures) are moved
by known translations of d px in several directions, frame 1 at -d/2 and frame 3 at +d/2
(``mind_engine.data.warp``), plus small affine motions; the network matches a grid of queries
of the middle frame within ``radius``. Per case:

- ``median_disp``: the median of the match displacement ``p3 - p1`` along the true direction
  (a blender scores 0, a perfect matcher d);
- ``APE``, ``Acc@1``, ``Acc@2``: end-point errors ``|p3 - (p1 + flow(p1))|`` of every evaluable
  match (``mind_engine.evaluation.metrics``, no confidence filtering: all of them count);
- ``Acc@1.5``: the share of matches with a pair error under 1.5 px, the small-motion bar (an
  integer matcher that rounds each end to the pixel nearest the truth stays under sqrt(2));
- ``centroid``: the median, over a few queries, of the offset between the centroids of
  ``|row|`` (summed over colour) in frame 3 and in frame 1 within ``radius`` of the query, along
  the true direction: where the rows point, before any argmax (d for a matcher, 0 for a blender);
- per end, for matchers that say which middle-frame point they matched (``query``, MIND's
  engine): ``on_pixel``, the share of ends within half a pixel of the truth in x and y (on the
  pixel nearest the true source), and ``toward_query``, the median signed error along the motion
  toward the query (d/2 for a blender: "no motion"; 0 for a matcher; the blend's bias between);
- ``perpendicular``: the median absolute component of ``p3 - p1`` across the true direction (the
  pyramid's coarse field off to the side shows here).

Sub-pixel motions (0.5, 1.5 px) are in ``DISTANCES``: at the pyramid's finest level the residual
motion is a pixel or two, and a network that answers "no motion" there cannot correct the
coarse levels.

:func:`passes` is the bar of the model issue: within 0.5 px of d and Acc@2 >= 0.9 for every
d <= 8. ``matcher`` and ``rows`` can replace the engine, so the probe itself is testable with a
matcher that returns the truth and a network that returns the frame average.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..data.warp import AffineMotion
from .metrics import point_errors

DISTANCES = (0.5, 1, 1.5, 2, 3, 4, 8, 16, 32)
SMALL = (0.5, 1, 1.5, 2, 3)  # the small-motion probe (``bench/motion_probe.py --small``)
PRECISE = 1.5  # px: the pair error under which a match counts as precise (``Acc@1.5``)
DIRECTIONS = (0.0, 90.0, 225.0, 135.0)  # degrees; x, y and both diagonals, both signs of each axis
AFFINE = ({"name": "rot2+t4", "t": 4.0, "angle": 30.0, "rotate": 2.0, "zoom": 0.0},
          {"name": "zoom3+t4", "t": 4.0, "angle": 300.0, "rotate": 0.0, "zoom": 0.03})
PROBE_SIZE = (96, 96)
PROBE_RADIUS = 24
PROBE_STRIDE = 12
CENTROID_QUERIES = 4


def _params(index: int, t, a, where) -> dict:
    """One case's parameters in ``AffineMotion.draw``'s form: no base map, no noise."""
    return {"index": index, "base": torch.eye(2), "t": torch.tensor(t, dtype=torch.float32),
            "A": torch.tensor(a, dtype=torch.float32), "where": where, "noise": 0.0}


def cases(distances=DISTANCES, directions=DIRECTIONS, affine=AFFINE):
    """(name, d, direction (unit x, y), t, A) of every probe case."""
    out = []
    for d in distances:
        for ang in directions:
            u = (math.cos(math.radians(ang)), math.sin(math.radians(ang)))
            out.append((f"d{d:g}@{ang:g}", float(d), u, (d * u[0], d * u[1]), ((0.0, 0.0), (0.0, 0.0))))
    for c in affine:
        u = (math.cos(math.radians(c["angle"])), math.sin(math.radians(c["angle"])))
        r, z = math.radians(c["rotate"]), c["zoom"]
        a = ((z, -r), (r, z))  # linearised rotation + zoom, frame 1 -> 3
        out.append((c["name"], float(c["t"]), u, (c["t"] * u[0], c["t"] * u[1]), a))
    return out


def frame1_flow(gen: AffineMotion, p: dict) -> tuple[np.ndarray, np.ndarray]:
    """True frame-1 -> frame-3 displacement of every frame-1 pixel (H, W, 2) and where it stays
    inside frame 3 (the ground truth ``metrics.point_errors`` reads)."""
    t, a = p["t"].double(), p["A"].double()
    eye = torch.eye(2, dtype=torch.float64)
    c = gen.centre.double().cpu()
    rel = gen.grid.double().cpu() - c
    q = rel @ (eye + a / 2).T + t / 2  # frame-2 point it shows, centred: p + m(p)/2
    p3 = c + (q + t / 2) @ torch.linalg.inv(eye - a / 2).T
    flow = (p3 - gen.grid.double().cpu()).numpy()
    w, h = gen.size
    valid = (p3[..., 0] >= 0) & (p3[..., 0] <= w - 1) & (p3[..., 1] >= 0) & (p3[..., 1] <= h - 1)
    return flow.astype(np.float32), valid.numpy()


def probe_queries(gen: AffineMotion, p: dict, stride: int) -> np.ndarray:
    """Grid queries whose true correspondences lie inside both frames."""
    c1, c3 = gen.correspondences(p)
    w, h = gen.size
    xs = np.arange(stride // 2, w, stride)
    ys = np.arange(stride // 2, h, stride)
    q = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    ok = np.ones(len(q), bool)
    for c in (c1.cpu().numpy(), c3.cpu().numpy()):
        pts = c[q[:, 1], q[:, 0]]
        ok &= (pts[:, 0] >= 0) & (pts[:, 0] <= w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1)
    return q[ok]


class EngineMatcher:
    """The probe's default matcher and row function: the public engine on ``model``, one
    ``Engine`` (one linearisation) per image pair for both; ``levels`` and ``refine`` as
    ``mind_engine.match``'s, ``refine`` "none" by default: the probe measures the network (the
    rows, for the centroid, are always the single-scale ones)."""

    def __init__(self, model, tier: str = "auto", levels: int | str = 1, refine: str = "none"):
        self.model, self.tier, self.levels, self.pair, self.engine = model, tier, levels, None, None
        self.refine = refine

    def _engine(self, i1, i3):
        from ..api import Engine

        if self.pair is None or self.pair[0] is not i1 or self.pair[1] is not i3:
            self.pair, self.engine = (i1, i3), Engine(i1, i3, model=self.model, tier=self.tier)
        return self.engine

    def match(self, i1, i3, queries, radius):
        from ..api import quiet_search_edge

        with quiet_search_edge():  # one scale on motions it cannot follow is what the probe measures
            return self._engine(i1, i3).match(queries, radius=radius, progress=False, levels=self.levels,
                                              refine=self.refine)

    def rows(self, i1, i3, queries):
        return self._engine(i1, i3).rows(queries)


def end_errors(gen: AffineMotion, p: dict, m) -> tuple[np.ndarray, np.ndarray] | None:
    """(N, 2) errors of ``m.pts1`` and ``m.pts3`` against the true sources of ``m.query`` (the
    middle-frame points matched), or None for a matcher that gives no ``query``."""
    q = getattr(m, "query", None)
    if q is None:
        return None
    qi = np.rint(np.asarray(q, np.float64).reshape(-1, 2)).astype(int)
    c1, c3 = (c.cpu().numpy().astype(np.float64) for c in gen.correspondences(p))
    return (np.asarray(m.pts1, np.float64) - c1[qi[:, 1], qi[:, 0]],
            np.asarray(m.pts3, np.float64) - c3[qi[:, 1], qi[:, 0]])


def end_record(ends, ok: np.ndarray, u) -> dict:
    """``on_pixel`` (bools, both ends of every evaluable match) and ``toward_query`` (signed error
    along the motion toward the query, px) of one case; empty lists without ``ends``."""
    if ends is None:
        return {"on_pixel": [], "toward_query": []}
    e1, e3 = (e[ok] for e in ends)
    u = np.asarray(u, np.float64)
    on = np.concatenate([np.abs(e).max(1) <= 0.5 + 1e-6 for e in (e1, e3)])
    toward = np.concatenate([e1 @ u, -(e3 @ u)])  # frame 1's truth is q - t/2, frame 3's q + t/2
    return {"on_pixel": on.tolist(), "toward_query": toward.tolist()}


def centroid_offsets(g1: torch.Tensor, g3: torch.Tensor, queries: np.ndarray, radius: int) -> np.ndarray:
    """(N, 2) centroid of |row| in frame 3 minus that in frame 1, within ``radius`` of each query."""
    out = []
    h, w = g1.shape[-2:]
    for k, (x, y) in enumerate(queries):
        x0, x1, y0, y1 = max(0, x - radius), min(w, x + radius + 1), max(0, y - radius), min(h, y + radius + 1)
        cs = []
        for g in (g1, g3):
            m = g[k, :, y0:y1, x0:x1].abs().sum(0).double()
            tot = float(m.sum())
            if tot <= 0 or not math.isfinite(tot):
                cs.append((float("nan"), float("nan")))
                continue
            ys, xs = torch.meshgrid(torch.arange(y0, y1, dtype=torch.float64),
                                    torch.arange(x0, x1, dtype=torch.float64), indexing="ij")
            cs.append((float((m * xs).sum()) / tot, float((m * ys).sum()) / tot))
        out.append((cs[1][0] - cs[0][0], cs[1][1] - cs[0][1]))
    return np.asarray(out, np.float64).reshape(-1, 2)


def probe(model=None, matcher=None, rows=None, size=PROBE_SIZE, radius: int = PROBE_RADIUS,
          stride: int = PROBE_STRIDE, distances=DISTANCES, directions=DIRECTIONS, affine=AFFINE,
          centroid_queries: int = CENTROID_QUERIES, images=None) -> dict:
    """Run the probe. Returns {"cases": per-case records, "by_d": per-distance summary (pooled
    over directions; affine cases under their own names), "settings": ..., "seconds": ...}.

    ``model``: a MindNet (matched by the engine); or ``matcher(i1, i3, queries, radius)`` (->
    ``pts1``, ``pts3``) and optionally ``rows(i1, i3, queries)`` (-> two (N, 3, H, W) tensors;
    without it no centroid is measured). The model's training mode is restored afterwards.
    """
    t0 = time.perf_counter()
    was_training = model.training if model is not None else None
    if matcher is None:
        if model is None:
            raise ValueError("probe needs a model or a matcher")
        engine = EngineMatcher(model)
        matcher, rows = engine.match, rows or engine.rows
    gen = AffineMotion(size, "val", images=images)
    records = []
    try:
        for ci, (name, d, u, t, a) in enumerate(cases(distances, directions, affine)):
            for ti in (ci % len(gen.textures),):  # the images take turns, case by case
                p = _params(ti, t, a, where=((0.3 + 0.17 * ci) % 1.0, (0.6 + 0.29 * ci) % 1.0))
                frames, _ = gen.render(p)
                i1, i3 = frames[0].cpu(), frames[2].cpu()
                q = probe_queries(gen, p, stride)
                m = matcher(i1, i3, q, radius)
                pts1, pts3 = np.asarray(m.pts1, np.float64), np.asarray(m.pts3, np.float64)
                flow, valid = frame1_flow(gen, p)
                err, ok = point_errors(pts1, pts3, flow, valid)
                disp = (pts3 - pts1) @ np.asarray(u)
                perp = np.abs((pts3 - pts1) @ np.asarray((-u[1], u[0])))
                rec = {"case": name, "d": d, "image": ti, "n": int(ok.sum()), "errors": err[ok].tolist(),
                       "disp": disp[ok].tolist(), "perp": perp[ok].tolist(), "centroid": [],
                       **end_record(end_errors(gen, p, m), ok, u)}
                if rows is not None and centroid_queries > 0 and len(q):
                    sel = q[np.linspace(0, len(q) - 1, min(centroid_queries, len(q))).round().astype(int)]
                    g1, g3 = rows(i1, i3, sel)
                    rec["centroid"] = (centroid_offsets(g1, g3, sel, radius) @ np.asarray(u)).tolist()
                records.append(rec)
    finally:
        if model is not None:
            model.train(was_training)
    per_match = ("errors", "disp", "perp", "on_pixel", "toward_query")
    return {"by_d": summarize(records), "cases": [{k: v for k, v in r.items() if k not in per_match}
                                                   | {"median_disp": _median(r["disp"])} for r in records],
            "settings": {"size": list(size), "radius": radius, "stride": stride, "images": list(gen.names),
                         "distances": list(distances), "directions": list(directions),
                         "affine": [c["name"] for c in affine]},
            "seconds": round(time.perf_counter() - t0, 2)}


def _median(v) -> float:
    v = [x for x in v if math.isfinite(x)]
    return float(np.median(v)) if v else float("nan")


def summarize(records) -> dict:
    """Pool records by case group: translations by d ("1", "2", ...), affine cases by name."""
    groups: dict[str, list] = {}
    for r in records:
        key = r["case"] if not r["case"].startswith("d") else f"{r['d']:g}"
        groups.setdefault(key, []).append(r)
    out = {}
    for key, rs in groups.items():
        pooled = {k: [x for r in rs for x in r[k]] for k in ("errors", "disp", "perp", "centroid", "on_pixel",
                                                              "toward_query")}
        err = np.asarray(pooled["errors"], np.float64)
        out[key] = {"d": rs[0]["d"], "n": int(len(err)), "median_disp": _median(pooled["disp"]),
                    "APE": _mean(err, err), "Acc@1": _mean(err <= 1, err), "Acc@1.5": _mean(err < PRECISE, err),
                    "Acc@2": _mean(err <= 2, err), "perpendicular": _median(pooled["perp"]),
                    "on_pixel": _mean(np.asarray(pooled["on_pixel"], bool), pooled["on_pixel"]),
                    "toward_query": _median(pooled["toward_query"]), "centroid": _median(pooled["centroid"])}
    return out


def _mean(values, of) -> float:
    """The mean of ``values`` (a share for bools), NaN when there are none."""
    return float(np.mean(values)) if len(of) else float("nan")


def passes(result: dict, max_d: float = 8, tol: float = 0.5, acc2: float = 0.9) -> bool:
    """The model issue's bar: every translation with d <= max_d has its median displacement within
    ``tol`` px of d and Acc@2 >= ``acc2``."""
    rows = [r for k, r in result["by_d"].items() if k[0].isdigit() and r["d"] <= max_d]
    return bool(rows) and all(abs(r["median_disp"] - r["d"]) <= tol and r["Acc@2"] >= acc2 for r in rows)


def score(result: dict, max_d: float = 8) -> float:
    """One number to rank checkpoints by: mean ``Acc@1.5`` over translations with d <= max_d, so
    the sub-pixel and 1-3 px motions weigh as much as following 4-8 px."""
    rows = [r["Acc@1.5"] for k, r in result["by_d"].items() if k[0].isdigit() and r["d"] <= max_d]
    return float(np.mean(rows)) if rows else float("nan")


def small_motion_passes(result: dict, distances=(1, 2, 3), share: float = 0.9) -> bool:
    """The precision issue's bar: at least ``share`` of the matches have a pair error under
    ``PRECISE`` px at each of ``distances``."""
    rows = [result["by_d"].get(f"{d:g}") for d in distances]
    return all(r is not None and r["Acc@1.5"] >= share for r in rows)


def table(result: dict) -> str:
    """The per-distance summary as a Markdown table."""
    lines = ["| motion | matches | median displacement (px) | across (px) | APE (px) | Acc@1 | Acc@1.5 | Acc@2 | "
             "ends on the nearest pixel | toward the query (px) | row centroid (px) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in result["by_d"].items():
        label = f"d = {key} px" if key[0].isdigit() else f"{key} (t = {r['d']:g} px)"
        lines.append(f"| {label} | {r['n']} | {r['median_disp']:.2f} | {r['perpendicular']:.2f} | {r['APE']:.2f} | "
                     f"{r['Acc@1']:.3f} | {r['Acc@1.5']:.3f} | {r['Acc@2']:.3f} | {r['on_pixel']:.3f} | "
                     f"{r['toward_query']:.2f} | {r['centroid']:.2f} |")
    return "\n".join(lines)
