"""How deep a pyramid is and how far each level searches (``pyramid`` runs it): facts the
argument rules read too, so they sit apart from the pyramid's machinery and import nothing."""
from __future__ import annotations

import math

RESIDUAL_RADIUS = 4  # search radius at every level but the coarsest: what a trained model follows
LEVEL_STRIDE = 4  # query grid of the levels above the finest (pixels of that level)
MIN_SIDE = 16  # the coarsest level's shorter side is at least this many pixels
# ... and with levels="auto" at least this many: the bundled model matches worse on coarser
# levels than that (bench/accuracy.py --radius 32 --max-motion 32 --levels 2 3 auto, 384x128
# moved stills and layered scenes, 256x173 motorcycle: 3 levels, coarsest side 32, gave APE 3.08
# and 2.59 px where 4 levels, coarsest side 16, gave 3.32 and 3.31)
AUTO_MIN_SIDE = 32
# The finest level MIND runs at: 0, the caller's resolution (the default), or 1, half of it, the
# caller's queries then read from level 1's field (``pyramid.read_from_field``): about a quarter
# of the convolution work of the default call (issue 38), for a refinement to finish the pixels.
FINEST_LEVELS = (0, 1)


def max_levels(hw: tuple[int, int], min_side: int = MIN_SIDE) -> int:
    """The most levels an (h, w) pair allows: its coarsest level keeps ``min_side`` pixels on the
    shorter side (1 for a pair smaller than that)."""
    side = min(hw)
    levels = 1
    while math.ceil(side / 2 ** levels) >= min_side:
        levels += 1
    return levels


def auto_levels(hw: tuple[int, int], radius: int | None) -> int:
    """Enough levels that the search range (``radius``, or the longer side for the whole image)
    is at most ``RESIDUAL_RADIUS`` at the coarsest level, within ``max_levels(hw, AUTO_MIN_SIDE)``."""
    search = max(hw) if radius is None else radius
    deepest = max_levels(hw, AUTO_MIN_SIDE)
    levels = 1
    while search / 2 ** (levels - 1) > RESIDUAL_RADIUS and levels < deepest:
        levels += 1
    return levels


def level_radii(levels: int, radius: int | None) -> list[int | None]:
    """Search radius per level, finest first: ``RESIDUAL_RADIUS`` below the coarsest, the requested
    range scaled at the coarsest (None stays None: the whole coarsest image)."""
    if levels == 1:
        return [radius]
    coarsest = None if radius is None else max(1, math.ceil(radius / 2 ** (levels - 1)))
    return [RESIDUAL_RADIUS] * (levels - 1) + [coarsest]
