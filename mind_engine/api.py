"""The public API (DESIGN.md section 5): match, jacobian_rows, Matches."""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .images import image_pair, pad_to_multiple
from .matching import flat_to_xy, grid_queries, search_boxes, user_queries
from .model import MULTIPLE
from .tiers import make_tier
from .weights import load_model

CHUNK_BYTES = 256 << 20  # rows held at once per chunk of queries


@dataclass
class Matches:
    """Correspondences, as numpy arrays in the caller's image frame (x right, y down).

    ``pts1[i]`` in img1 and ``pts3[i]`` in img3 match through ``query[i]`` of the middle frame;
    ``score`` ranks them (the smaller of ``score1`` and ``score3``, the peak-to-mean ratios).
    """

    pts1: np.ndarray
    pts3: np.ndarray
    query: np.ndarray
    score: np.ndarray
    score1: np.ndarray
    score3: np.ndarray

    def __len__(self) -> int:
        return len(self.score)

    def __getitem__(self, index) -> "Matches":
        return Matches(*(getattr(self, f)[index] for f in self.__dataclass_fields__))

    def top(self, k: int) -> "Matches":
        """The ``k`` best matches by score, best first (ties keep query order)."""
        order = np.argsort(-self.score, kind="stable")
        return self[order[: max(int(k), 0)]]


def _resolve(model, device):
    """The model and device to run on: the model's device unless one is asked for."""
    if model is None:
        device = device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
        return load_model(device=device), torch.device(device)
    if device is None:
        device = next(model.parameters()).device
    return model.to(device).eval(), torch.device(device)


def _pair_and_queries(img1, img3, model, device, queries, stride, radius):
    """The model and device, the two images, and the queries (a grid of ``stride`` or the
    caller's) with their search boxes: all checked before any network runs."""
    model, device = _resolve(model, device)
    t1, t3 = image_pair(img1, img3, device)
    hw = tuple(t1.shape[-2:])
    q = grid_queries(hw, stride) if queries is None else user_queries(queries, hw)
    return model, device, t1, t3, hw, q, search_boxes(q, radius, hw)


def _engine(model, t1, t3, tier: str, memory, backend: str):
    """The tier over the pair padded to the network's multiple, and how many queries make a
    chunk (rows of one chunk within CHUNK_BYTES)."""
    p1, _ = pad_to_multiple(t1[None], MULTIPLE)
    p3, _ = pad_to_multiple(t3[None], MULTIPLE)
    with torch.no_grad():
        engine = make_tier(tier, model, p1, p3, memory=memory, backend=backend)
    return engine, max(1, CHUNK_BYTES // (6 * 4 * p1.shape[-2] * p1.shape[-1]))


def match(img1, img3, stride: int = 4, radius: int | None = None, model=None, device=None,
          queries=None, tier: str = "auto", progress: bool | None = None, memory: int | None = None,
          backend: str = "torch") -> Matches:
    """Match img1 to img3 through the middle frame the network interpolates.

    Queries are a grid of ``stride`` (default) or the caller's (N, 2) ``queries``; ``radius``
    restricts each peak search to the square of that radius around its query (None: whole
    image). ``tier`` picks the engine (``mind_engine.tiers``; "auto": the fastest exact one),
    ``memory`` bounds its working memory in bytes, ``backend`` runs it through torch or an exported
    graph ("onnxruntime", "tensorrt"), ``progress`` shows a bar (default: when many chunks run on a
    terminal).
    """
    model, device, t1, t3, hw, q, boxes = _pair_and_queries(img1, img3, model, device, queries, stride, radius)
    engine, step = _engine(model, t1, t3, tier, memory, backend)
    starts = range(0, len(q), step)
    show = progress if progress is not None else (len(starts) > 4 and sys.stderr.isatty())
    parts1, parts3 = [], []
    for s in tqdm(starts, desc=f"matching ({engine.name})", unit="chunk", disable=not show):
        r1, r3 = engine.match(q[s:s + step].to(device), boxes[s:s + step], hw)
        parts1.append([t.cpu() for t in r1])
        parts3.append([t.cpu() for t in r3])
    (idx1, _, s1), (idx3, _, s3) = ([torch.cat(c) if c else torch.zeros(0) for c in zip(*parts)]
                                    for parts in (parts1, parts3))
    s1, s3 = s1.float().numpy(), s3.float().numpy()
    w = hw[1]
    return Matches(pts1=flat_to_xy(idx1.long(), w), pts3=flat_to_xy(idx3.long(), w),
                   query=q.float().numpy(), score=np.minimum(s1, s3), score1=s1, score3=s3)


def jacobian_rows(model, img1, img3, queries, device=None, tier: str = "auto", memory: int | None = None,
                  backend: str = "torch"):
    """The rows d sum_c out[c, y, x] / d I1 and / d I3 for each (x, y) query, as two
    (N, 3, H, W) float32 tensors in the caller's frame (for inspection: N full maps in memory)."""
    model, device = _resolve(model, device)
    t1, t3 = image_pair(img1, img3, device)
    hw = tuple(t1.shape[-2:])
    q = user_queries(queries, hw)
    engine, _ = _engine(model, t1, t3, tier, memory, backend)
    g1, g3 = engine.rows(q.to(device))
    return g1[:, :, :hw[0], :hw[1]], g3[:, :, :hw[0], :hw[1]]
