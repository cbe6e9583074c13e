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
- ``centroid``: the median, over a few queries, of the offset between the centroids of
  ``|row|`` (summed over colour) in frame 3 and in frame 1 within ``radius`` of the query, along
  the true direction: where the rows point, before any argmax (d for a matcher, 0 for a blender).

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

DISTANCES = (1, 2, 4, 8, 16, 32)
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
    ``Engine`` (one linearisation) per image pair for both; ``levels`` as ``mind_engine.match``'s
    (the rows, for the centroid, are always the single-scale ones)."""

    def __init__(self, model, tier: str = "auto", levels: int | str = 1):
        self.model, self.tier, self.levels, self.pair, self.engine = model, tier, levels, None, None

    def _engine(self, i1, i3):
        from ..api import Engine

        if self.pair is None or self.pair[0] is not i1 or self.pair[1] is not i3:
            self.pair, self.engine = (i1, i3), Engine(i1, i3, model=self.model, tier=self.tier)
        return self.engine

    def match(self, i1, i3, queries, radius):
        from ..api import quiet_search_edge

        with quiet_search_edge():  # one scale on motions it cannot follow is what the probe measures
            return self._engine(i1, i3).match(queries, radius=radius, progress=False, levels=self.levels)

    def rows(self, i1, i3, queries):
        return self._engine(i1, i3).rows(queries)


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
                rec = {"case": name, "d": d, "image": ti, "n": int(ok.sum()), "errors": err[ok].tolist(),
                       "disp": disp[ok].tolist(), "centroid": []}
                if rows is not None and centroid_queries > 0 and len(q):
                    sel = q[np.linspace(0, len(q) - 1, min(centroid_queries, len(q))).round().astype(int)]
                    g1, g3 = rows(i1, i3, sel)
                    rec["centroid"] = (centroid_offsets(g1, g3, sel, radius) @ np.asarray(u)).tolist()
                records.append(rec)
    finally:
        if model is not None:
            model.train(was_training)
    return {"by_d": summarize(records), "cases": [{k: v for k, v in r.items() if k not in ("errors", "disp")}
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
        err = np.asarray([e for r in rs for e in r["errors"]], np.float64)
        disp = [x for r in rs for x in r["disp"]]
        cen = [x for r in rs for x in r["centroid"]]
        out[key] = {"d": rs[0]["d"], "n": int(len(err)), "median_disp": _median(disp),
                    "APE": float(err.mean()) if len(err) else float("nan"),
                    "Acc@1": float((err <= 1).mean()) if len(err) else float("nan"),
                    "Acc@2": float((err <= 2).mean()) if len(err) else float("nan"),
                    "centroid": _median(cen)}
    return out


def passes(result: dict, max_d: float = 8, tol: float = 0.5, acc2: float = 0.9) -> bool:
    """The model issue's bar: every translation with d <= max_d has its median displacement within
    ``tol`` px of d and Acc@2 >= ``acc2``."""
    rows = [r for k, r in result["by_d"].items() if k[0].isdigit() and r["d"] <= max_d]
    return bool(rows) and all(abs(r["median_disp"] - r["d"]) <= tol and r["Acc@2"] >= acc2 for r in rows)


def score(result: dict, max_d: float = 8) -> float:
    """One number to rank checkpoints by: mean Acc@2 over translations with d <= max_d."""
    rows = [r["Acc@2"] for k, r in result["by_d"].items() if k[0].isdigit() and r["d"] <= max_d]
    return float(np.mean(rows)) if rows else float("nan")


def table(result: dict) -> str:
    """The per-distance summary as a Markdown table."""
    lines = ["| motion | matches | median displacement (px) | APE (px) | Acc@1 | Acc@2 | row centroid (px) |",
             "|---|---|---|---|---|---|---|"]
    for key, r in result["by_d"].items():
        label = f"d = {key} px" if key[0].isdigit() else f"{key} (t = {r['d']:g} px)"
        lines.append(f"| {label} | {r['n']} | {r['median_disp']:.2f} | {r['APE']:.2f} | {r['Acc@1']:.3f} | "
                     f"{r['Acc@2']:.3f} | {r['centroid']:.2f} |")
    return "\n".join(lines)
