"""What the sub-commands that match or read image pairs share: the one-line user error, the
model, the input checks, the images, the match records and the one call that matches."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..checks import check_distinct, check_levels
from ..defaults import LEVELS, RADIUS, REFINE, STRIDE
from ..images import check_image_path
from ..matches import FELL_BACK, RAW, REFINED, rank


class UserError(Exception):
    """A problem with what the user asked for, reported in one line."""


def load(weights, device):
    """The model of ``--weights`` (a checkpoint, or None / 'default' for the bundled one)."""
    from ..weights import load_model

    try:
        return load_model(weights, device=device)
    except FileNotFoundError as e:
        raise UserError(str(e)) from e


def input_files(a) -> dict:
    """The files a pair command reads, by option name: what its outputs must not be."""
    return {"img1": a.img1, "img3": a.img3, "--weights": a.weights}


def check_inputs(a) -> None:
    """IMG1 and IMG3 are files, and the outputs (``--out``, ``--json``) can be written without
    overwriting them (as files: through hard and symbolic links too), the checkpoint or each other."""
    check_image_path(a.img1, "img1")
    check_image_path(a.img3, "img3")
    json_path = getattr(a, "json", None)
    check_distinct({"--out": a.out, "--json": None if json_path == "-" else json_path}, input_files(a))


def read(path) -> np.ndarray:
    """An image file as HxWx3 uint8, read as every entry point reads it."""
    from ..images import to_tensor

    t = to_tensor(path, str(path))
    return (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


REFINEMENT_NAMES = {RAW: "raw", REFINED: "refined", FELL_BACK: "fell back"}


def match_record(m, flags=None) -> list[dict]:
    """Matches (and the network's forward-backward flags) as JSON-ready records: the final ends,
    the network's raw ends, what the refinement did and whether the match passed its check."""
    out = []
    for i in range(len(m)):
        r = {"query": [float(v) for v in m.query[i]], "p1": [float(v) for v in m.pts1[i]],
             "p3": [float(v) for v in m.pts3[i]], "score": float(m.score[i]),
             "score1": float(m.score1[i]), "score3": float(m.score3[i]), "texture": float(m.texture[i]),
             "p1_raw": [float(v) for v in m.pts1_raw[i]], "p3_raw": [float(v) for v in m.pts3_raw[i]],
             "refinement": REFINEMENT_NAMES[int(m.refinement[i])], "consistent": bool(m.consistent[i])}
        if flags is not None:
            r["fb_consistent"] = not bool(flags[i])
        out.append(r)
    return out


def run_match(img1, img3, model, *, queries=None, stride=STRIDE, radius=RADIUS, device=None, tier="auto",
              refine=REFINE, fb=False, top=None, progress=None, levels=LEVELS, precision="fp32"):
    """Match two images (paths or arrays) on a grid of ``stride`` or at ``queries``; returns (Matches
    sorted best first: failed checks, the refinement's or the network's (``fb``), last, then by
    score; flags or None, seconds)."""
    from ..api import match, match_fb

    t = time.perf_counter()
    m = match(img1, img3, queries=queries, stride=stride, radius=radius, model=model, device=device, tier=tier,
              progress=progress, levels=levels, precision=precision, refine=refine)
    flags = None
    if fb:
        m, flags = match_fb(img1, img3, radius=radius, model=model, device=device, tier=tier,
                            forward=m, refine=refine, levels=levels, precision=precision)
    secs = time.perf_counter() - t
    order = rank(m.score, ~m.consistent if flags is None else ~m.consistent | flags)
    if top is not None:
        order = order[:top]
    return m[order], (flags[order] if flags is not None else None), secs


def settings_text(stride, radius, levels, tier, weights, hw, refine=REFINE) -> str:
    """The settings a match ran with, for a summary line or a figure's title: stride, radius
    ('none': the whole image), levels ("auto" with the depth it took on this pair), refinement,
    tier, model."""
    depth = check_levels(levels, hw, radius)
    shown = f"{levels} ({depth})" if levels == "auto" else str(levels)
    model = "default" if weights is None else Path(weights).name
    return (f"stride {stride}, radius {'none' if radius is None else radius}, levels {shown}, refine {refine}, "
            f"tier {tier}, model {model}")
