"""The matches figure's layout: stacked or side by side, "auto" choosing the one where the motion
shows as the lines' slant."""
import numpy as np
import pytest

from mind_engine.evaluation import figures


@pytest.mark.parametrize("motion, layout, side", [((3, 0), "auto", False), ((0, 3), "auto", True),
                                                  ((0, 3), "stacked", False), ((3, 0), "side", True)])
def test_the_layout_puts_the_motion_across_the_lines(tmp_path, monkeypatch, motion, layout, side):
    rng = np.random.default_rng(0)
    a = (rng.random((40, 60, 3)) * 255).astype(np.uint8)
    pts1 = np.array([[10.0, 10.0], [30.0, 20.0], [50.0, 30.0]])
    shown = []
    monkeypatch.setattr(figures.plt.Axes, "imshow", lambda ax, img, *x, **k: shown.append(img.shape))
    figures.draw_matches(a, a, pts1, pts1 + motion, tmp_path / "m.png", layout=layout, dpi=40)
    assert shown == [(40, 2 * 60 + 4, 3) if side else (2 * 40 + 4, 60, 3)]
    assert (tmp_path / "m.png").stat().st_size > 0
    with pytest.raises(ValueError, match="layout must be"):
        figures.draw_matches(a, a, pts1, pts1, tmp_path / "n.png", layout="diagonal")
