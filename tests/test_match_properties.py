"""Property test of ``mind_engine.match`` (hypothesis) over image shapes, dtypes, channel layouts,
query sets (empty, borders, grids that miss the image) and radii: every result is finite, inside
the image, of the right count, and the same whatever the dtype the image came in."""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mind_engine as me

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = me.MindNet(encoder=(2, 2, 3, 3, 3), decoder=(3, 3, 3, 2, 2)).eval()


@st.composite
def cases(draw):
    h, w = draw(st.integers(16, 45)), draw(st.integers(16, 45))
    channels = draw(st.sampled_from([None, 1, 3, 4]))  # None: a 2-D grey array
    seed = draw(st.integers(0, 2**16))
    if draw(st.booleans()):
        stride, queries = draw(st.integers(3, 60)), None
    else:
        stride = 4
        xs, ys = st.integers(0, w - 1), st.integers(0, h - 1)
        corners = [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)]
        queries = draw(st.lists(st.one_of(st.tuples(xs, ys), st.sampled_from(corners)), max_size=6))
    radius = draw(st.one_of(st.none(), st.integers(0, 12)))
    return h, w, channels, seed, stride, queries, radius


def _images(h, w, channels, seed):
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels is None else (h, w, channels)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(2)]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_match_is_well_formed_and_dtype_invariant(case):
    h, w, channels, seed, stride, queries, radius = case
    u8 = _images(h, w, channels, seed)
    kw = dict(stride=stride, queries=queries, radius=radius, model=TINY, refine="none")  # the readout's properties
    m = me.match(*u8, **kw)
    n = len(range(stride // 2, h, stride)) * len(range(stride // 2, w, stride)) if queries is None else len(queries)
    assert len(m) == n and m.pts1.shape == m.pts3.shape == m.query.shape == (n, 2) and m.score.shape == (n,)
    for p in (m.pts1, m.pts3):
        assert np.isfinite(p).all() and (p >= 0).all() and (p[:, 0] < w).all() and (p[:, 1] < h).all()
        if radius is not None:
            assert (np.abs(p - m.query) <= radius).all()
    assert np.isfinite(m.score).all() and (m.score >= 0).all()
    np.testing.assert_array_equal(m.score, np.minimum(m.score1, m.score3))
    if queries is not None:
        np.testing.assert_array_equal(m.query, np.asarray(queries, np.float32).reshape(-1, 2))
    for as_float in ([a.astype(np.float32) / 255 for a in u8], [a.astype(np.float64) / 255 for a in u8],
                     [torch.from_numpy(a) for a in u8] if channels is None else None):
        if as_float is None:
            continue
        f = me.match(*as_float, **kw)
        np.testing.assert_array_equal(f.pts1, m.pts1)
        np.testing.assert_array_equal(f.pts3, m.pts3)
        np.testing.assert_array_equal(f.score, m.score)
