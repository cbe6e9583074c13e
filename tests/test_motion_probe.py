"""The motion probe: a matcher of the true motion passes it, a network that blends fails it, and
the engine path runs."""
from __future__ import annotations

import math
from types import SimpleNamespace

import cv2
import numpy as np
import torch

from mind_engine.evaluation.baselines import klt
from mind_engine.evaluation.motion_probe import SMALL, passes, probe, score, small_motion_passes, table

SMALL_D = (1, 2, 4, 8)


def translation_matcher(i1, i3, queries, radius):
    """The true motion of a global translation, measured by phase correlation (sub-pixel):
    frame 1 at q - s/2, frame 3 at q + s/2."""
    g1, g3 = (cv2.cvtColor(t.permute(1, 2, 0).numpy().astype(np.float32), cv2.COLOR_RGB2GRAY) for t in (i1, i3))
    win = cv2.createHanningWindow(g1.shape[::-1], cv2.CV_64F)
    (sx, sy), _ = cv2.phaseCorrelate(g1.astype(np.float64), g3.astype(np.float64), win)
    q = np.asarray(queries, np.float64)
    s = np.array([sx, sy])
    return SimpleNamespace(pts1=q - s / 2, pts3=q + s / 2)


def rounding_matcher(i1, i3, queries, radius):
    """An integer matcher that puts each end on the pixel nearest its true source, and says which
    middle-frame point it matched (as MIND's engine does); the translation s is KLT's median
    flow (phase correlation is off by 0.1-0.4 px at sub-pixel shifts here)."""
    q = np.asarray(queries, np.float64)
    k = klt(i1, i3, points=q.astype(np.float32))
    s = np.median(np.asarray(k.pts3, np.float64) - np.asarray(k.pts1, np.float64), axis=0)
    return SimpleNamespace(pts1=np.rint(q - s / 2), pts3=np.rint(q + s / 2), query=q)


def blender_rows(i1, i3, queries):
    """Jacobian rows, by autograd, of the network that returns the frame average."""
    a, b = i1.clone().requires_grad_(True), i3.clone().requires_grad_(True)
    out = (a + b) / 2
    g1, g3 = [], []
    for x, y in np.asarray(queries):
        r1, r3 = torch.autograd.grad(out[:, y, x].sum(), (a, b), retain_graph=True)
        g1.append(r1)
        g3.append(r3)
    return torch.stack(g1), torch.stack(g3)


def blender_matcher(i1, i3, queries, radius):
    """Peaks of the blender's rows within ``radius`` of each query (MIND's match rule)."""
    g1, g3 = blender_rows(i1, i3, queries)
    pts = []
    for g in (g1, g3):
        m = g.abs().sum(1)
        out = []
        for k, (x, y) in enumerate(np.asarray(queries)):
            y0, x0 = max(0, y - radius), max(0, x - radius)
            win = m[k, y0:y + radius + 1, x0:x + radius + 1]
            iy, ix = np.unravel_index(int(win.argmax()), tuple(win.shape))
            out.append((x0 + ix, y0 + iy))
        pts.append(np.asarray(out, np.float64))
    return SimpleNamespace(pts1=pts[0], pts3=pts[1], query=np.asarray(queries, np.float64))


def test_a_matcher_of_the_true_motion_passes():
    r = probe(matcher=translation_matcher, distances=SMALL_D, affine=())
    assert passes(r) and score(r) > 0.99
    for d in SMALL_D:
        assert abs(r["by_d"][str(d)]["median_disp"] - d) < 0.2


def test_small_motion_an_integer_matcher_that_rounds_right_scores_one():
    r = probe(matcher=rounding_matcher, distances=SMALL, affine=(), directions=(0.0, 90.0, 225.0, 30.0))
    assert small_motion_passes(r) and score(r) == 1.0
    for d in SMALL:
        row = r["by_d"][f"{d:g}"]
        assert row["on_pixel"] == 1.0 and row["Acc@1.5"] == 1.0 and abs(row["toward_query"]) <= 0.5 + 1e-6
    assert "| d = 1.5 px |" in table(r)


def test_small_motion_a_blender_answers_on_the_query():
    r = probe(matcher=blender_matcher, rows=blender_rows, distances=(2, 3), directions=(0.0, 90.0), affine=())
    assert not small_motion_passes(r, distances=(2, 3))
    for d in (2, 3):
        row = r["by_d"][str(d)]
        assert row["on_pixel"] == 0.0 and row["Acc@1.5"] == 0.0 and row["toward_query"] == d / 2
        assert row["perpendicular"] == 0.0


def test_a_network_that_blends_fails():
    r = probe(matcher=blender_matcher, rows=blender_rows, distances=SMALL_D, affine=())
    assert not passes(r)
    for d in SMALL_D:
        row = r["by_d"][str(d)]
        assert row["median_disp"] == 0 and abs(row["centroid"]) < 1e-9
    assert r["by_d"]["8"]["Acc@2"] < 0.05
    assert "| d = 8 px |" in table(r)


def test_the_engine_path_runs_on_a_model(net):
    r = probe(net, distances=(2,), directions=(0.0,), affine=())
    row = r["by_d"]["2"]
    assert row["n"] > 0 and 0 <= row["Acc@2"] <= 1 and math.isfinite(row["centroid"])
    assert not net.training  # mode restored
