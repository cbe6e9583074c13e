"""``Matches`` on hand-made matches: the spread selection (``best_per_cell``) and the summary
that ``repr`` / ``print`` give."""
import numpy as np
import pytest

from mind_engine.matches import Matches


def _matches(query, score, texture=None):
    q = np.asarray(query, np.float32).reshape(-1, 2)
    s = np.asarray(score, np.float32)
    return Matches(pts1=q + 1, pts3=q - 1, query=q, score=s, score1=s, score3=s + 1,
                   texture=None if texture is None else np.asarray(texture, np.float32))


def test_best_per_cell_keeps_the_best_match_of_each_square_best_first():
    #         cell (0,0)      (0,0)     (1,0)     (1,0)      (0,1)      (3,2): alone
    m = _matches([[1, 1], [14, 15], [16, 0], [31, 15], [0, 16], [60, 40]], [1.0, 3.0, 2.0, 5.0, 0.5, 0.1])
    best = m.best_per_cell(16)
    np.testing.assert_array_equal(best.query, [[31, 15], [14, 15], [0, 16], [60, 40]])
    np.testing.assert_array_equal(best.score, np.float32([5.0, 3.0, 0.5, 0.1]))
    np.testing.assert_array_equal(best.pts1, best.query + 1)  # every field follows its match
    assert len(m.best_per_cell(1)) == 6 and len(m.best_per_cell(1000)) == 1
    assert len(m[:0].best_per_cell(16)) == 0


def test_best_per_cell_ties_keep_query_order_and_the_cell_is_checked():
    m = _matches([[0, 0], [1, 1], [2, 2]], [2.0, 2.0, 1.0])
    np.testing.assert_array_equal(m.best_per_cell(8).query, [[0, 0]])
    for bad in (0, -4, 2.5, True, "16"):
        with pytest.raises(ValueError, match="cell"):
            m.best_per_cell(bad)


def test_repr_summarises_like_numpy():
    """``print(m)`` gives the count, the ranges and a few matches at each end, not every array."""
    n = 704
    q = np.stack([np.arange(n) % 96 * 4, np.arange(n) // 96 * 4], 1)
    m = _matches(q, np.linspace(1, 8, n), texture=np.r_[np.zeros(70), np.full(n - 70, 5.0)])
    text = repr(m)
    assert text.startswith("Matches(704 matches, score 1..8 (median 4.5), 9.9% below TEXTURE_MIN;")
    assert len(text.splitlines()) == 8 and "  ..." in text.splitlines() and len(text) < 600
    assert "query (0, 0): p1 (1, 1), p3 (-1, -1), score 1" in text and str(m) == text
    assert repr(m[:2]).count("query") == 2 and repr(m[:0]) == "Matches(0 matches)"
    assert "below TEXTURE_MIN" not in repr(_matches(q[:1], [2.0])) and "1 match," in repr(_matches(q[:1], [2.0]))
