"""The mind-engine command: match / interpolate / train / bench / demo, and clear errors."""
import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import mind_engine as me
from mind_engine import cli

from conftest import SMALL



pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    ck = me.save_model(me.MindNet(**SMALL), d / "tiny.safetensors")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    iio.imwrite(d / "a.png", a)
    iio.imwrite(d / "b.png", np.roll(a, 3, axis=1))
    return d, str(ck)


def test_match_json_and_figure(files, capsys):
    d, ck = files
    rc = cli.main(["match", str(d / "a.png"), str(d / "b.png"), "--stride", "16", "--top", "5",
                   "--weights", ck, "--json", str(d / "m.json"), "--out", str(d / "m.png"), "--tier", "t0"])
    assert rc == 0
    doc = json.loads((d / "m.json").read_text())
    assert doc["n"] == 5 and doc["width"] == 64 and doc["height"] == 48 and doc["stride"] == 16
    rec = doc["matches"][0]
    assert set(rec) == {"query", "p1", "p3", "score", "score1", "score3", "texture", "p1_raw", "p3_raw", "refinement",
                        "consistent"}
    key = [(not r["consistent"], -r["score"]) for r in doc["matches"]]
    assert key == sorted(key)  # failed checks last, then by score
    # the same as the API
    m = me.match(str(d / "a.png"), str(d / "b.png"), stride=16, model=me.load_model(ck), tier="t0").top(5)
    np.testing.assert_array_equal(np.array([r["p1"] for r in doc["matches"]]), m.pts1)
    np.testing.assert_allclose([r["texture"] for r in doc["matches"]], m.texture)
    assert iio.imread(d / "m.png").ndim == 3
    assert "5 matches" in capsys.readouterr().out


def test_match_subpixel_fb_fields(files):
    d, ck = files
    rc = cli.main(["match", str(d / "a.png"), str(d / "b.png"), "--stride", "32", "--weights", ck,
                   "--subpixel", "--fb", "--json", str(d / "f.json"), "--tier", "t0"])
    assert rc == 0
    doc = json.loads((d / "f.json").read_text())
    assert doc["subpixel"] and doc["fb"] and all("fb_consistent" in r for r in doc["matches"])


def test_match_takes_queries_and_threads(files, tmp_path, capsys):
    """``mind-engine match --queries FILE --threads N``, parsed and checked as ``match-pairs`` does:
    the matches are the API's at those points; a bad file is one line naming it."""
    d, ck = files
    (tmp_path / "q.txt").write_text("# x,y\n10,5\n40 30\n")
    rc = cli.main(["match", str(d / "a.png"), str(d / "b.png"), "--queries", str(tmp_path / "q.txt"),
                   "--threads", "1", "--weights", ck, "--json", str(tmp_path / "q.json"), "--tier", "t0"])
    assert rc == 0 and torch.get_num_threads() == 1
    doc = json.loads((tmp_path / "q.json").read_text())
    m = me.match(str(d / "a.png"), str(d / "b.png"), queries=[(10, 5), (40, 30)], model=me.load_model(ck), tier="t0")
    got = sorted((r["query"], r["p1"], r["p3"]) for r in doc["matches"])
    assert got == sorted(([*map(float, q)], [*map(float, a)], [*map(float, b)])
                         for q, a, b in zip(m.query, m.pts1, m.pts3))
    (tmp_path / "bad.txt").write_text("10,5\n1,2,3\n")
    rc = cli.main(["match", str(d / "a.png"), str(d / "b.png"), "--queries", str(tmp_path / "bad.txt"),
                   "--weights", ck])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("mind-engine match: error: --queries") and "line 2" in err[-1]
    assert cli.main(["match", str(d / "a.png"), str(d / "b.png"), "--threads", "0", "--weights", ck]) == 2
    assert "--threads" in capsys.readouterr().err


def test_match_json_to_stdout_keeps_stdout_pure(files, capsys):
    d, ck = files
    assert cli.main(["match", str(d / "a.png"), str(d / "b.png"), "--stride", "32", "--weights", ck,
                     "--tier", "t0", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["n"] == 2 and "2 matches" in err


@pytest.mark.parametrize("args, msg", [
    (["match", "nope1.png", "nope3.png"], "nope1.png: no such file"),
    (["interpolate", "nope1.png", "nope3.png", "--out", "x.png"], "no such file"),
])
def test_missing_files_exit_2_with_a_clear_message(args, msg, capsys):
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mind-engine {args[0]}: error:") and msg in err and "Traceback" not in err


@pytest.mark.parametrize("args", [["bench", "nope"], ["match", "a.png"], ["demo", "--stride", "x"]])
def test_bad_usage_returns_2_with_argparse_s_message(args, capsys):
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "usage: mind-engine" in err and "error:" in err


def test_bad_checkpoint_is_a_clear_error(files, capsys):
    d, _ = files
    (d / "junk.safetensors").write_bytes(b"not a checkpoint")
    assert cli.main(["match", str(d / "a.png"), str(d / "b.png"), "--weights", str(d / "junk.safetensors")]) == 2
    assert "junk.safetensors" in capsys.readouterr().err


def test_interpolate_writes_the_middle_frame(files):
    d, ck = files
    assert cli.main(["interpolate", str(d / "a.png"), str(d / "b.png"), "--out", str(d / "mid.png"), "--weights", ck]) == 0
    assert iio.imread(d / "mid.png").shape == (48, 64, 3)


def test_train_delegates_remaining_arguments(monkeypatch):
    import mind_engine.training as training

    seen = []
    monkeypatch.setattr(training, "main", lambda argv=None: seen.append(argv) or {})
    assert cli.main(["train", "--steps", "3", "--out", "x"]) == 0
    assert seen == [["--steps", "3", "--out", "x"]]


def test_bench_finds_the_repo_scripts_or_says_why_not(monkeypatch, tmp_path, capsys):
    from mind_engine.commands import bench

    assert bench.find_bench("accuracy") == Path(cli.__file__).resolve().parent.parent / "bench" / "accuracy.py"
    monkeypatch.setattr(bench, "__file__", str(tmp_path / "site-packages" / "mind_engine" / "commands" / "bench.py"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["bench", "accuracy"]) == 2
    assert "installed wheel does not include" in capsys.readouterr().err


def test_bench_help_says_the_arguments_pass_through(capsys):
    assert cli.main(["bench", "--help"]) == 0
    assert "passes through to bench/NAME.py" in " ".join(capsys.readouterr().out.split())


def test_python_dash_m():
    r = subprocess.run([sys.executable, "-m", "mind_engine", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "match" in r.stdout and "demo" in r.stdout


def test_match_works_without_the_dev_extras(files):
    """A wheel install has no OpenCV / matplotlib: `match --json` must still work, and a figure
    request must fail with a clear message, not a traceback."""
    d, ck = files
    block = ("import sys\n"
             "class B:\n"
             "    def find_spec(self, name, path=None, target=None):\n"
             "        if name.split('.')[0] in ('cv2', 'matplotlib'):\n"
             "            raise ImportError(f'No module named {name!r}', name=name)\n"
             "sys.meta_path.insert(0, B())\n"
             "import torch; torch.set_num_threads(1)\n"
             "from mind_engine.cli import main\n"
             "sys.exit(main(sys.argv[1:]))\n")
    base = [sys.executable, "-c", block, "match", str(d / "a.png"), str(d / "b.png"), "--stride", "32",
            "--weights", ck, "--tier", "t0", "--refine", "none"]
    root = str(Path(cli.__file__).resolve().parent.parent)
    os = __import__("os")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    r = subprocess.run(base + ["--json", str(d / "nocv.json")], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    # 64x48 at stride 32: the cell-centred grid (matching.grid_queries) has 2 x 1 queries
    m = me.match(str(d / "a.png"), str(d / "b.png"), stride=32, model=me.load_model(ck), tier="t0", refine="none")
    doc = json.loads((d / "nocv.json").read_text())
    assert doc["n"] == len(m) == 2
    got = sorted((tuple(r["query"]), tuple(r["p1"]), tuple(r["p3"])) for r in doc["matches"])
    assert got == sorted(zip(map(tuple, m.query.tolist()), map(tuple, m.pts1.tolist()), map(tuple, m.pts3.tolist())))
    r = subprocess.run(base + ["--out", str(d / "nocv.png")], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and "matplotlib" in r.stderr and "Traceback" not in r.stderr
    assert "matches (" not in r.stdout  # refused before any matching is done
    r = subprocess.run(base[:-2] + ["--json", str(d / "nocv2.json")], capture_output=True, text=True, timeout=120,
                       env=env)  # the default refinement is OpenCV's (a dependency; here it is missing)
    assert r.returncode == 2 and "needs cv2" in r.stderr and "Traceback" not in r.stderr


@pytest.fixture
def default_model(monkeypatch):
    """Point the bundled default model at a path the test chooses (None: no default model)."""
    from mind_engine import weights

    def use(path):
        monkeypatch.setattr(weights, "DEFAULT_WEIGHTS", Path(path))
        weights._default_model.cache_clear()

    yield use
    weights._default_model.cache_clear()


def test_demo_uses_the_default_model_or_says_there_is_none(files, tmp_path, default_model, capsys):
    _, ck = files
    default_model(tmp_path / "absent.safetensors")
    assert cli.main(["demo", "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mind-engine demo: error:") and "no trained default model" in err
    assert not (tmp_path / "none" / "matches.png").exists()
    default_model(ck)
    assert cli.main(["demo", "--out", str(tmp_path / "ok"), "--stride", "48"]) == 0
    for f in ("input1.png", "input3.png", "matches.png", "fig4.png", "interpolated.png", "matches.json"):
        assert (tmp_path / "ok" / f).stat().st_size > 0
    out, err = capsys.readouterr()  # never silent: each stage says what it does, progress lines off a terminal
    assert "interpolating the middle frame..." in out and "drawing the figures" in out
    # MIND's finest level is 1 before the default (photometric) refinement
    assert "mind_engine: matching " in err and "matching level 1 (auto): " in err and "\r" not in err


def _accuracy_bench():
    import importlib.util

    path = Path(cli.__file__).resolve().parent.parent / "bench" / "accuracy.py"
    spec = importlib.util.spec_from_file_location("accuracy_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_accuracy_bench_table_and_json(files, tmp_path, capsys, default_model):
    """A small run of bench/accuracy.py on the default model (here the tiny one)."""
    import cv2

    from mind_engine.evaluation import pairs as E

    _, ck = files
    default_model(ck)
    kitti = tmp_path / "kitti"
    for sub in ("colored_0", "flow_noc"):
        (kitti / sub).mkdir(parents=True)
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, (40, 120, 3), dtype=np.uint8)
    cv2.imwrite(str(kitti / "colored_0" / "000000_10.png"), frame)
    cv2.imwrite(str(kitti / "colored_0" / "000000_11.png"), np.roll(frame, 2, axis=1))
    E.write_kitti_flow(kitti / "flow_noc" / "000000_10.png", np.tile([2.0, 0.0], (40, 120, 1)))
    out = tmp_path / "acc.json"
    doc = _accuracy_bench().main(["--tier", "t0", "--stride", "32", "--synthetic", "1", "--layered", "2",
                                  "--size", "96x64", "--moto-width", "64", "--kitti", str(kitti),
                                  "--out", str(out)])
    printed = capsys.readouterr().out
    methods = ["MIND raw", "MIND", "KLT", "KLT+FB", "DIS"]
    assert json.loads(out.read_text())["datasets"].keys() == {"synthetic", "layered", "motorcycle", "kitti2012"}
    header = [line.split() for line in printed.splitlines() if line.split()[:2] == ["MIND", "raw"]]
    assert header and all(h == ["MIND", "raw", "MIND", "KLT", "KLT+FB", "DIS"] for h in header)  # the columns
    assert doc["weights"]["is_default"] and doc["weights"]["path"] == ck
    assert "disparity" in doc["datasets"]["motorcycle"]["summary"]
    syn = doc["datasets"]["synthetic"]
    assert {"mind_through_query", "refined", "consistent"} <= set(syn["pairs"][0])
    assert doc["settings"]["stride"] == 32 and doc["settings"]["levels"] == "auto"  # the protocol but stride
    for entry in doc["datasets"].values():
        for res in entry["results"].values():
            assert len({res[m]["n"] for m in methods}) == 1  # the same number of matches for each
            assert set(res["MIND"]) >= {"APE", "Acc@5", "Acc@10", "Acc@20", "Acc@30"}
    lay = doc["datasets"]["layered"]  # each pair reported on its own as well as pooled
    rows = lay["results_per_pair"]["keep=1"]
    assert [r["name"] for r in rows] == ["layered/0", "layered/1"]
    assert sum(r["MIND"]["n"] for r in rows) == lay["results"]["keep=1"]["MIND"]["n"]
    assert all(src[1] in ("coffee", "stereo_motorcycle") for p in lay["pairs"] for src in p["sources"])
    assert any(line.split()[:1] == ["layered/1"] for line in printed.splitlines())


def test_accuracy_bench_without_a_default_model_says_so(default_model, tmp_path, capsys):
    default_model(tmp_path / "absent.safetensors")
    with pytest.raises(SystemExit) as e:
        _accuracy_bench().main(["--out", str(tmp_path / "x.json")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "no trained default model" in err and "--weights" in err


@pytest.mark.parametrize("extra, msg", [(["--kitti", "{tmp}/none"], "does not look like KITTI"),
                                        (["--synthetic", "0", "--layered", "0", "--moto-width", "0"],
                                         "no dataset selected"),
                                        (["--keep", "0"], "--keep")])
def test_accuracy_bench_bad_options_are_clear_errors(files, tmp_path, capsys, extra, msg):
    _, ck = files
    with pytest.raises(SystemExit) as e:
        _accuracy_bench().main(["--weights", ck, "--out", str(tmp_path / "a.json"),
                                *(x.format(tmp=tmp_path) for x in extra)])
    assert e.value.code == 2 and msg in capsys.readouterr().err
