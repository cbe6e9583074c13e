"""The public functions: ``match`` and ``jacobian_rows``, each one
``Engine`` over the pair."""
from __future__ import annotations

from .engine.engine import Engine
from .matches import Matches


def match(img1, img3, stride: int = 4, radius: int | None = None, model=None, device=None,
          queries=None, tier: str = "auto", progress: bool | None = None, memory: int | None = None,
          backend: str = "torch", levels: int | str = 1) -> Matches:
    """Match img1 to img3 through the middle frame the network interpolates.

    Queries are a grid of ``stride`` (default) or the caller's (N, 2) ``queries``; ``radius``
    restricts each peak search to the square of that radius around its query (None: whole
    image). ``tier`` picks the engine (``mind_engine.engine.tiers``; "auto": the fastest exact one),
    ``memory`` bounds its working memory in bytes, ``backend`` runs it through torch or an exported
    graph ("onnxruntime", "tensorrt"), ``progress`` shows a bar (default: when many chunks run on a
    terminal). An empty query set (or a grid that misses a tiny image) gives an empty ``Matches``.
    ``levels``: 1 (the default) matches at the images' own scale; k > 1 or "auto" matches coarse
    to fine through an image pyramid, for motions larger than the network follows at one scale
    (``mind_engine.engine.pyramid``; ``Engine.coarse_to_fine`` also returns the motion fields).

    ``device``: the one asked for, else ``model``'s device, else CUDA when available, else the CPU
    (the same rule as ``load_model`` and ``interpolate``). ``model`` is never changed: a model on
    another device or in training mode is copied. Every argument is checked before any network
    runs (``mind_engine.checks``); a pair too large for the device's free memory is refused with
    the estimate (``mind_engine.engine.budget``).
    """
    engine = Engine(img1, img3, model=model, device=device, tier=tier, memory=memory, backend=backend)
    return engine.match(queries, stride, radius, progress, levels)


def jacobian_rows(model, img1, img3, queries, device=None, tier: str = "auto", memory: int | None = None,
                  backend: str = "torch"):
    """The rows d sum_c out[c, y, x] / d I1 and / d I3 for each (x, y) query, as two
    (N, 3, H, W) float32 tensors in the caller's frame (for inspection: N full maps in memory).
    Devices, checks and the caller's model as in ``match``."""
    return Engine(img1, img3, model=model, device=device, tier=tier, memory=memory, backend=backend).rows(queries)
