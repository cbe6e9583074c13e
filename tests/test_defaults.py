"""What a user meets first (issue 32): one table of matching defaults read by every entry point,
coarse to fine by default, the one-scale warning, ``model=`` as a path, and the small things of
the command line (--version, progress off a terminal, one plan line per pyramid, figures)."""
import inspect
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import mind_engine as me
from mind_engine import cli, defaults
from mind_engine.interfaces import MindMatcher

from conftest import SMALL

ROOT = Path(__file__).resolve().parent.parent
TABLE = {"stride": defaults.STRIDE, "radius": defaults.RADIUS, "levels": defaults.LEVELS}
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small random model, in memory and saved as a checkpoint."""
    torch.manual_seed(0)
    net = me.MindNet(**SMALL).eval()
    return net, me.save_model(net, tmp_path_factory.mktemp("ck") / "tiny.safetensors")


@pytest.fixture(scope="module")
def moved():
    """A 64x96 crop of a photo and the same crop 12 px to the right: 6 px each side of the
    middle frame, which the bundled model follows at one scale."""
    from skimage import data

    img = data.astronaut()[100:164, 150:270]
    return np.ascontiguousarray(img[:, :96]), np.ascontiguousarray(img[:, 12:108])


# ----------------------------------------------------------------------------- one table


def _signature_defaults(fn, names=("stride", "radius", "levels")) -> dict:
    params = inspect.signature(fn).parameters
    return {k: params[k].default for k in names if k in params}


def test_the_table_is_coarse_to_fine_semi_dense():
    assert TABLE == {"stride": 4, "radius": 32, "levels": "auto"}


@pytest.mark.parametrize("fn", [me.match, me.match_fb, me.match_subpixel, me.match_many, me.Engine.match,
                                me.Engine.coarse_to_fine, me.Engine.refine, MindMatcher.__init__, cli.build_parser],
                         ids=lambda f: getattr(f, "__qualname__", str(f)))
def test_every_entry_point_reads_the_table(fn):
    if fn is cli.build_parser:
        parser = cli.build_parser()
        for argv in (["match", "a", "b"], ["match-pairs", "l", "--out", "o"], ["match-video", "v", "--out", "o"],
                     ["demo"]):
            a = parser.parse_args(argv)
            assert {k: getattr(a, k) for k in TABLE} == TABLE, argv[0]
        return
    assert _signature_defaults(fn) == TABLE


@pytest.mark.parametrize("fn", [me.match, me.match_fb, me.match_many, me.Engine.match, MindMatcher.__init__,
                                cli.build_parser], ids=lambda f: getattr(f, "__qualname__", str(f)))
def test_every_matching_entry_point_refines_by_the_table(fn):
    assert defaults.REFINE == "dis"  # the study's choice (bench/results/refine_study_cpu.json)
    if fn is cli.build_parser:
        parser = cli.build_parser()
        for argv in (["match", "a", "b"], ["match-pairs", "l", "--out", "o"], ["match-video", "v", "--out", "o"],
                     ["demo"]):
            assert parser.parse_args(argv).refine == defaults.REFINE, argv[0]
        return
    assert inspect.signature(fn).parameters["refine"].default == defaults.REFINE


def test_the_refinement_settings_read_the_table():
    from mind_engine.refinement import Settings

    s = Settings()
    assert (s.window, s.levels, s.move_limit, s.tol, s.both) == (
        defaults.LK_WINDOW, defaults.LK_LEVELS, None, defaults.CHECK_TOL, defaults.LK_BOTH)
    study = json.loads((ROOT / "bench" / "results" / "refine_study_cpu.json").read_text())
    assert study["chosen_method"] == defaults.REFINE
    chosen, lk = study["chosen_settings"], study["best_lk_settings"]
    assert (chosen["move_limit"], chosen["tol"]) == (defaults.DIS_MOVE_LIMIT, defaults.CHECK_TOL)
    assert (lk["window"], lk["levels"], lk["move_limit"], lk["tol"], lk["both"]) == (
        defaults.LK_WINDOW, defaults.LK_LEVELS, defaults.LK_MOVE_LIMIT, defaults.CHECK_TOL, defaults.LK_BOTH)


def test_batch_settings_and_the_matcher_read_the_table():
    from mind_engine.batch.spec import Settings

    assert Settings.make() == Settings(TABLE["stride"], TABLE["radius"], None, "auto", None, TABLE["levels"],
                                       defaults.REFINE)
    assert MindMatcher(me.MindNet(**SMALL)).refine == defaults.REFINE
    assert (MindMatcher(me.MindNet(**SMALL)).stride, MindMatcher(me.MindNet(**SMALL)).radius) == (4, 32)


def test_match_with_no_argument_runs_the_pyramid(tiny, monkeypatch):
    from mind_engine import api

    net, _ = tiny
    rng = np.random.default_rng(0)
    a = rng.random((64, 64, 3)).astype(np.float32)
    runs, real = [], api.Engine.coarse_to_fine
    monkeypatch.setattr(api.Engine, "coarse_to_fine",
                        lambda self, *args, **kw: runs.append((args, kw)) or real(self, *args, **kw))
    m = me.match(a, np.roll(a, 2, axis=1), model=net)
    # the default refinement is photometric: MIND stops one level early (defaults.FINEST_LEVEL "auto")
    assert len(runs) == 1 and runs[0][0][1:4] == (4, 32, "auto") and runs[0][1] == {"finest_level": 1}
    assert len(m) == 16 * 16
    me.match(a, np.roll(a, 2, axis=1), model=net, refine="none")  # the readout: down to the caller's resolution
    assert len(runs) == 2 and runs[1][1] == {"finest_level": 0}


@pytest.mark.parametrize("refine, levels, finest", [("dis", 2, 1), ("lk", 3, 1), ("none", 3, 0), ("peak", 3, 0),
                                                    ("dis", 1, 0)])
def test_finest_level_auto_stops_early_only_before_a_photometric_refinement(refine, levels, finest):
    from mind_engine.checks import check_finest_level

    assert defaults.FINEST_LEVEL == "auto"
    assert check_finest_level("AUTO", levels, refine) == finest


def test_subpixel_refines_through_the_pyramid_by_default(tiny, monkeypatch):
    from mind_engine import api

    net, _ = tiny
    a = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    runs, real = [], api.Engine.coarse_to_fine
    monkeypatch.setattr(api.Engine, "coarse_to_fine",
                        lambda self, *args, **kw: runs.append((args, kw)) or real(self, *args, **kw))
    m = me.match_subpixel(a, np.roll(a, 2, axis=1), model=net)
    assert len(runs) == 1 and runs[0][0][1:4] == (4, 32, "auto") and runs[0][1]["subpixel"]
    assert len(m) == 16 * 16


# ----------------------------------------------------------------------------- the one-scale warning


def test_one_scale_warns_once_when_the_motion_passes_the_radius(moved):
    with pytest.warns(me.SearchEdgeWarning, match=r"on the edge of their search box \(radius 3\)") as seen:
        m = me.match(*moved, stride=16, radius=3, levels=1)
    assert len(seen) == 1 and len(m) == 24
    with pytest.warns(me.SearchEdgeWarning) as seen:
        me.match_fb(*moved, stride=16, radius=3, levels=1)  # the swapped pair too: still one warning a call
    assert len(seen) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", me.SearchEdgeWarning)
        me.match(*moved, stride=16, radius=8, levels=1)  # a radius the motion fits in
        me.match(*moved, stride=16, radius=3)  # "auto" (one level at radius 3) was not a request for one scale
        me.match_subpixel(*moved, stride=16, radius=3)


# ----------------------------------------------------------------------------- model= a path


def test_model_may_be_a_checkpoint_path_or_default(tiny, pair, tmp_path):
    net, path = tiny
    ref = me.match(*pair, stride=10, model=net)
    for given in (path, str(path)):
        assert np.array_equal(me.match(*pair, stride=10, model=given).pts1, ref.pts1)
    assert np.array_equal(me.Engine(*pair, model=path).match(stride=10).pts3, ref.pts3)
    assert np.array_equal(me.interpolate(*pair, model=path), me.interpolate(*pair, model=net))
    g1, _ = me.jacobian_rows(str(path), *pair, [(5, 5)])
    assert torch.equal(g1, me.jacobian_rows(net, *pair, [(5, 5)])[0])
    assert np.array_equal(me.match_subpixel(*pair, stride=10, model=path).pts1,
                          me.match_subpixel(*pair, stride=10, model=net).pts1)
    fwd, flags = me.match_fb(*pair, stride=10, model=path)
    assert np.array_equal(flags, me.match_fb(*pair, stride=10, model=net)[1])
    assert torch.equal(MindMatcher(path).model.head.weight, net.head.weight)
    man = me.match_many([pair], tmp_path / "out", stride=10, model=str(path), progress=False)
    assert man["model"]["source"] == str(path) and man["counts"]["ok"] == 1
    assert man["model"]["sha256"] == me.match_many([pair], tmp_path / "out2", stride=10, model=net,
                                                   progress=False)["model"]["sha256"]


def test_model_default_names_the_bundled_model(tiny, pair, monkeypatch):
    from mind_engine import weights

    _, path = tiny
    monkeypatch.setattr(weights, "DEFAULT_WEIGHTS", path)
    weights._default_model.cache_clear()
    try:
        ref = me.match(*pair, stride=10)
        for name in ("default", "Default"):
            assert np.array_equal(me.match(*pair, stride=10, model=name).pts1, ref.pts1)
        assert torch.equal(me.load_model("default").head.weight, me.load_model().head.weight)
        assert MindMatcher("default").model is not weights.default_model("cpu")  # its own copy
    finally:
        weights._default_model.cache_clear()


def test_a_bad_model_path_is_a_clear_error(pair, tmp_path):
    from mind_engine.weights import CheckpointError

    for call in (lambda p: me.match(*pair, model=p), lambda p: me.Engine(*pair, model=p),
                 lambda p: MindMatcher(p), lambda p: me.match_many([pair], tmp_path / "o", model=p)):
        with pytest.raises(FileNotFoundError, match="no checkpoint at .*none.safetensors"):
            call(tmp_path / "none.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.safetensors is not a readable safetensors file"):
        me.match(*pair, model=str(tmp_path / "junk.safetensors"))
    with pytest.raises(TypeError, match="model must be a MindNet .*, a checkpoint path or 'default', got int"):
        me.match(*pair, model=3)
    with pytest.raises(ValueError, match="pass model= or weights=, not both"):
        me.match_many([pair], tmp_path / "o", model=str(tmp_path / "junk.safetensors"), weights="x")


# ----------------------------------------------------------------------------- batch folders


def test_a_folder_of_the_old_defaults_is_not_continued_with_the_new(tiny, pair, tmp_path):
    _, path = tiny
    old = me.match_many([pair], tmp_path, stride=10, radius=None, levels=1, weights=path, progress=False)
    assert "levels" not in old["settings"]  # as 0.2 wrote it: the old fingerprints hold
    with pytest.raises(ValueError, match=r"other settings \(levels was 1, now 'auto'; radius was None, now 32\)"
                                         r".*to continue it, pass levels=1, radius=None"):
        me.match_many([pair], tmp_path, stride=10, weights=path, progress=False)
    again = me.match_many([pair], tmp_path, stride=10, radius=None, levels=1, weights=path, progress=False)
    assert again["counts"] == {"ok": 1, "failed": 0, "resumed": 1}


# ----------------------------------------------------------------------------- the command line


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "OMP_NUM_THREADS": "1"}


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mind-engine {me.__version__}"


def test_off_a_terminal_progress_is_whole_lines(tiny, tmp_path):
    """stderr to a pipe: the plan, the level bars as lines (one at the end of each at least), no
    carriage return."""
    _, path = tiny
    rng = np.random.default_rng(0)
    a = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "a.png", a)
    iio.imwrite(tmp_path / "b.png", np.roll(a, 2, axis=1))
    r = subprocess.run([sys.executable, "-m", "mind_engine", "match", str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                        "--weights", str(path), "--stride", "16"], capture_output=True, text=True, timeout=120,
                       env=_env())
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr
    lines = r.stderr.splitlines()
    assert sum(line.startswith("mind_engine: matching") for line in lines) == 1
    # the default refinement is photometric, so MIND's finest level is 1 (defaults.FINEST_LEVEL "auto")
    assert any(line.startswith("matching level 1 (auto): 1/1 chunk") for line in lines), r.stderr


def test_a_pyramid_prints_one_plan_line(tiny, capsys):
    net, _ = tiny
    rng = np.random.default_rng(1)
    a = rng.random((64, 96, 3)).astype(np.float32)
    for refine, last in (("none", "then level 0 in 1 chunk(s)"), (defaults.REFINE, "MIND stops at level 1; level 0 "
                                                                                   "reads its field")):
        m = me.match(a, a, stride=16, radius=16, levels=3, model=net, progress=True, refine=refine)
        err = capsys.readouterr().err
        plans = [line for line in err.splitlines() if line.startswith("mind_engine: matching")]
        assert len(m) == 24 and len(plans) == 1, err
        assert ("24 queries of a 96x64 pair coarse to fine (3 levels, search radius 4 > 4 > 4 px; levels 2 (coarsest) "
                f"to 1 in chunks of their own, {last})") in plans[0]


def test_line_progress_writes_every_interval_and_at_the_end(capsys):
    from mind_engine.progress import LineProgress

    clock = iter([0.0, 1.0, 6.0, 7.0, 9.0, 9.5])
    list(LineProgress(range(4), desc="work", unit="chunk", file=sys.stderr, clock=lambda: next(clock)))
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["work: 2/4 chunk, 6 s", "work: 4/4 chunk, 10 s"]


def test_export_drops_only_the_torchvision_notices(caplog):
    from torch.onnx._internal.exporter import _registration

    from mind_engine.backends.onnx.export import REGISTRY_LOGGER, no_torchvision_notices

    assert _registration.logger.name == REGISTRY_LOGGER  # the logger the notices come through
    with caplog.at_level(logging.WARNING, logger=REGISTRY_LOGGER), no_torchvision_notices():
        _registration.logger.warning("torchvision is not installed. Skipping %s", "torchvision::nms")
        _registration.logger.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]
    with caplog.at_level(logging.WARNING, logger=REGISTRY_LOGGER):
        _registration.logger.warning("torchvision is not installed. Skipping %s", "torchvision::nms")
    assert len(caplog.records) == 2  # outside the export, the logger is as it was


def test_the_match_figure_has_a_score_scale_and_the_settings(tiny, tmp_path, monkeypatch):
    from mind_engine.evaluation import figures

    _, path = tiny
    rng = np.random.default_rng(0)
    a = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "a.png", a)
    iio.imwrite(tmp_path / "b.png", np.roll(a, 2, axis=1))
    saved = []
    real = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, p, *dpi: saved.append(fig) or real(fig, p, *dpi))
    assert cli.main(["match", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--weights", str(path),
                     "--stride", "16", "--out", str(tmp_path / "m.png")]) == 0
    (fig,) = saved
    title = fig.axes[0].get_title()
    assert "stride 16, radius 32, levels auto (1), refine dis, tier auto, model tiny.safetensors" in title
    assert len(fig.axes) == 2 and "MIND score" in fig.axes[1].get_ylabel()  # the colour scale


def test_cli_subpixel_runs_coarse_to_fine_by_default(tiny, tmp_path):
    _, path = tiny
    rng = np.random.default_rng(0)
    a = (rng.random((64, 96, 3)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "a.png", a)
    iio.imwrite(tmp_path / "b.png", np.roll(a, 2, axis=1))
    out = tmp_path / "s.json"
    assert cli.main(["match", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--weights", str(path),
                     "--stride", "32", "--subpixel", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["levels"] == "auto" and doc["radius"] == 32 and doc["subpixel"]
