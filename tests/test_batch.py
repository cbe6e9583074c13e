"""Matching many pairs in this process: results, file format, manifest, resume, bad pairs, CLI."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import mind_engine as me
from mind_engine import cli, defaults
from mind_engine.batch import Pair, read_pair_list, read_result, result_files
from mind_engine.batch.store import ARRAYS
from mind_engine.weights import weights_sha256

from conftest import write_batch_inputs

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
OPTS = {"stride": 16, "radius": 8, "threads": 1, "progress": False}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny random-weight model and 64x64 images: 0..5 one size, odd.png another, bad.png not an image."""
    d = tmp_path_factory.mktemp("batch")
    rng = write_batch_inputs(d, 6, seed=0)
    iio.imwrite(d / "odd.png", (rng.random((96, 64, 3)) * 255).astype(np.uint8))
    (d / "bad.png").write_text("not an image")
    return d


def _same(a: dict, b) -> bool:
    return all(np.array_equal(a[k], b[k] if isinstance(b, dict) else getattr(b, k)) for k in ARRAYS)


def test_results_equal_match_and_the_files_and_manifest_say_what_ran(data, tmp_path):
    pairs = [(data / "0.png", data / "1.png"), (data / "2.png", data / "3.png")]
    man = me.match_many(pairs, tmp_path, weights=data / "tiny.safetensors", **OPTS)
    model = me.load_model(data / "tiny.safetensors")
    for (p1, p3), rec in zip(pairs, man["pairs"]):
        assert rec["status"] == "ok" and rec["img1"] == str(p1) and rec["seconds_match"] > 0
        r = read_result(tmp_path / rec["file"])
        assert _same(r, me.match(p1, p3, model=model, stride=16, radius=8))
        assert r["pts1"].dtype == np.float32 and r["pts1"].shape == (16, 2) and r["score"].shape == (16,)
        assert (r["img1"], r["img3"], r["width"], r["height"]) == (str(p1), str(p3), 64, 64)
        assert r["fingerprint"] == man["fingerprint"]
    with np.load(tmp_path / "000000.npz", allow_pickle=False) as z:  # plain numpy, no pickles
        assert set(ARRAYS) <= set(z.files)
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == man and man["state"] == "finished" and man["counts"] == {"ok": 2, "failed": 0, "resumed": 0}
    assert man["model"]["sha256"] == weights_sha256(me.load_model(data / "tiny.safetensors"))
    assert man["settings"] == {"stride": 16, "radius": 8, "tier": "auto", "memory": None, "queries": None,
                               "levels": "auto", "refine": defaults.REFINE}
    assert man["versions"]["torch"] == torch.__version__ and man["versions"]["mind_engine"] == me.__version__
    files = result_files(tmp_path)  # a pair's file found by its names, not its key
    assert set(files) == {(str(p1), str(p3)) for p1, p3 in pairs}
    assert all(read_result(f)["img1"] == img1 for (img1, _), f in files.items())
    assert result_files(tmp_path / "nothing") == {}


def test_in_memory_model_hashes_like_its_file_and_queries_are_used(data, tmp_path):
    model = me.load_model(data / "tiny.safetensors")
    q = [(5, 7), (40, 33)]
    man = me.match_many([(data / "0.png", data / "1.png")], tmp_path, model=model, queries=q, **OPTS)
    assert man["model"]["sha256"] == weights_sha256(me.load_model(data / "tiny.safetensors"))
    r = read_result(tmp_path / "000000.npz")
    assert _same(r, me.match(data / "0.png", data / "1.png", model=model, queries=q, radius=8))


def test_bad_pairs_are_reported_and_never_stop_the_job(data, tmp_path):
    (tmp_path / "list.csv").write_text(
        f"img1,img3\n{data}/0.png,{data}/missing.png\n{data}/0.png,{data}/bad.png\n"
        f"{data}/0.png,{data}/odd.png\nonly_one.png\n{data}/4.png,{data}/5.png\n")
    man = me.match_many(tmp_path / "list.csv", tmp_path / "out", weights=data / "tiny.safetensors", **OPTS)
    errors = {r["key"]: r.get("error") for r in man["pairs"]}
    assert "no such file" in errors["line000002"] and "not an image" in errors["line000003"]
    assert "differ in size" in errors["line000004"] and "expected 2 image paths" in errors["line000005"]
    assert errors["line000006"] is None and man["counts"]["ok"] == 1 and man["counts"]["failed"] == 4
    assert sorted(p.name for p in (tmp_path / "out").glob("*.npz")) == ["line000006.npz"]


def test_pair_lists_take_csv_text_comments_and_relative_paths(tmp_path):
    (tmp_path / "a.txt").write_text("# pairs\nimg1 img3\n\nx.png y.png\nsub/x.png\tsub/y z.png\n/abs/x.png,y.png\n")
    ps = read_pair_list(tmp_path / "a.txt")
    assert [p.key for p in ps] == ["line000004", "line000005", "line000006"]
    assert (ps[0].img1, ps[1].img3, ps[2].img1) == (str(tmp_path / "x.png"), str(tmp_path / "sub/y z.png"), "/abs/x.png")
    (tmp_path / "b.csv").write_text('"a,1.png",b.png\n')
    assert read_pair_list(tmp_path / "b.csv")[0].img1 == str(tmp_path / "a,1.png")
    with pytest.raises(ValueError, match="pair key"):
        Pair("a/b", None, None, "", "")


def test_duplicate_keys_and_bad_arguments_are_refused(data, tmp_path):
    w = data / "tiny.safetensors"
    dup = [Pair("k", data / "0.png", data / "1.png", "a", "b")] * 2
    with pytest.raises(ValueError, match="occurs twice"):
        me.match_many(dup, tmp_path / "d", weights=w, **OPTS)
    with pytest.raises(ValueError, match="needs backend='ray'"):
        me.match_many([], tmp_path / "e", weights=w, workers=2)
    with pytest.raises(ValueError, match="backend must be"):
        me.match_many([], tmp_path / "e", weights=w, backend="dask")


def test_video_frames_at_a_gap(data, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(4):
        (frames / f"{i:03d}.png").write_bytes((data / f"{i}.png").read_bytes())
    man = me.match_many(me.batch.video_pairs(frames, gap=2), tmp_path / "out", weights=data / "tiny.safetensors", **OPTS)
    assert [r["key"] for r in man["pairs"]] == ["f000000-f000002", "f000001-f000003"]
    model = me.load_model(data / "tiny.safetensors")
    r = read_result(tmp_path / "out" / "f000001-f000003.npz")
    assert _same(r, me.match(data / "1.png", data / "3.png", model=model, stride=16, radius=8))


def test_video_file_is_decoded_as_a_stream(data, tmp_path):
    pytest.importorskip("av")
    frames = np.stack([iio.imread(data / f"{i}.png") for i in range(3)])
    iio.imwrite(tmp_path / "v.mp4", frames, plugin="pyav", codec="libx264", fps=10)
    decoded = list(iio.imiter(tmp_path / "v.mp4"))  # lossy: compare with what the decoder gives
    assert me.batch.pairs.video_length(tmp_path / "v.mp4") == 3
    man = me.match_many(me.batch.video_pairs(tmp_path / "v.mp4", gap=2), tmp_path / "out",
                        weights=data / "tiny.safetensors", **OPTS)
    assert [(r["key"], r["img1"]) for r in man["pairs"]] == [("f000000-f000002", f"{tmp_path / 'v.mp4'}#0")]
    model = me.load_model(data / "tiny.safetensors")
    assert _same(read_result(tmp_path / "out" / "f000000-f000002.npz"),
                 me.match(decoded[0], decoded[2], model=model, stride=16, radius=8))


def _cut_videos(data, folder):
    """A video whose index is lost (cut before its moov atom) and one cut in mid-stream (index first)."""
    av = pytest.importorskip("av")
    frames = [iio.imread(data / f"{i % 6}.png") for i in range(24)]
    for name, options in (("tail.mp4", {}), ("front.mp4", {"movflags": "faststart"})):
        with av.open(str(folder / name), "w", options=options) as c:
            s = c.add_stream("libx264", rate=10)
            s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
            for f in frames:
                c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
            c.mux(s.encode())
        data_ = (folder / name).read_bytes()
        (folder / f"cut_{name}").write_bytes(data_[:len(data_) * 6 // 10])
    return folder / "cut_tail.mp4", folder / "cut_front.mp4"


def test_a_cut_video_is_refused_in_one_line_naming_the_file(data, tmp_path, capsys):
    from mind_engine.data.sources import load_video

    no_index, mid_stream = _cut_videos(data, tmp_path)
    for call in (lambda: me.batch.video_pairs(no_index, gap=1), lambda: load_video(no_index)):
        with pytest.raises(ValueError) as e:
            call()
        msg = str(e.value)
        assert msg.startswith(f"cannot decode {no_index}: ") and "\n" not in msg and "pip install" not in msg, msg
        assert "cut short or damaged" in msg and "ffmpeg version" not in msg
    with pytest.raises(ValueError, match=rf"cannot decode {mid_stream} after frame \d+: .*cut short or damaged"):
        me.match_many(me.batch.video_pairs(mid_stream, gap=1), tmp_path / "out", weights=data / "tiny.safetensors",
                      **{**OPTS, "stride": 32})
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["state"] == "aborted" and man["counts"]["ok"] >= 1  # the frames before the cut are matched and kept
    assert cli.main(["match-video", str(no_index), "--out", str(tmp_path / "cli"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"mind-engine match-video: error: cannot decode {no_index}: "), err


DRIVER = """
import sys, torch
torch.set_num_threads(1)
import mind_engine as me
d = sys.argv[1]
pairs = [(f"{d}/{i}.png", f"{d}/{(i + 1) % 6}.png") for i in range(6)]
me.match_many(pairs, sys.argv[2], weights=f"{d}/tiny.safetensors", stride=16, radius=8, progress=False)
"""


def test_a_killed_driver_resumes_without_redoing_finished_pairs(data, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(data), str(out)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("*.npz")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    before = {p.name: os.stat(p).st_mtime_ns for p in out.glob("*.npz")}
    assert 1 <= len(before) < 6, f"the driver should have been killed mid-job, found {sorted(before)}"
    pairs = [(f"{data}/{i}.png", f"{data}/{(i + 1) % 6}.png") for i in range(6)]
    man = me.match_many(pairs, out, weights=data / "tiny.safetensors", **OPTS)
    assert man["counts"] == {"ok": 6, "failed": 0, "resumed": len(before)}
    assert {r["key"] + ".npz" for r in man["pairs"] if r.get("resumed")} == set(before)
    assert all(os.stat(out / n).st_mtime_ns == t for n, t in before.items())  # not rewritten
    assert not list(out.glob(".*.tmp"))
    with pytest.raises(ValueError, match="other settings"):  # same folder, other settings: refused
        me.match_many(pairs, out, weights=data / "tiny.safetensors", **{**OPTS, "stride": 8})


def test_cli_match_pairs_writes_progress_lines_off_a_terminal(data, tmp_path, capsys):
    """stderr not a terminal (a log): ``match-pairs`` writes whole progress lines (at least the
    last), never a carriage return; ``--no-progress`` writes none."""
    (tmp_path / "two.txt").write_text(f"{data}/0.png {data}/1.png\n{data}/1.png {data}/2.png\n")
    common = ["--weights", str(data / "tiny.safetensors"), "--stride", "16", "--radius", "8", "--threads", "1"]
    assert cli.main(["match-pairs", str(tmp_path / "two.txt"), "--out", str(tmp_path / "a"), *common]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and err.splitlines()[-1].startswith("matching pairs: 2/2 pair"), err
    assert cli.main(["match-pairs", str(tmp_path / "two.txt"), "--out", str(tmp_path / "b"), *common,
                     "--no-progress"]) == 0
    assert "matching pairs" not in capsys.readouterr().err


def test_a_folder_of_other_settings_is_refused_in_the_caller_s_words(data, tmp_path, capsys):
    """The same refusal names ``match_many``'s arguments to Python callers and the options to the
    command's (``stride=16`` / ``--stride 16``, ``restart=True`` / ``--restart``)."""
    (tmp_path / "one.txt").write_text(f"{data}/0.png {data}/1.png\n")
    common = ["--weights", str(data / "tiny.safetensors"), "--radius", "8", "--threads", "1", "--no-progress"]
    out = str(tmp_path / "o")
    assert cli.main(["match-pairs", str(tmp_path / "one.txt"), "--out", out, "--stride", "16", *common]) == 0
    capsys.readouterr()
    assert cli.main(["match-pairs", str(tmp_path / "one.txt"), "--out", out, "--stride", "8", *common]) == 2
    err = capsys.readouterr().err
    assert "to continue it, pass --stride 16; or use another output folder, or start over with --restart," in err
    assert "stride=16" not in err and "restart=True" not in err
    with pytest.raises(ValueError, match=r"to continue it, pass stride=16; or .* restart=True \(mind-engine: --restart"):
        me.match_many(tmp_path / "one.txt", out, stride=8, radius=8, weights=data / "tiny.safetensors",
                      progress=False)


def test_cli_match_pairs_and_match_video(data, tmp_path, capsys):
    (tmp_path / "good.txt").write_text(f"{data}/0.png {data}/1.png\n")
    (tmp_path / "mixed.txt").write_text(f"{data}/0.png {data}/1.png\n{data}/0.png {data}/odd.png\n")
    common = ["--weights", str(data / "tiny.safetensors"), "--stride", "16", "--radius", "8", "--threads", "1",
              "--no-progress"]
    assert cli.main(["match-pairs", str(tmp_path / "good.txt"), "--out", str(tmp_path / "g"), *common]) == 0
    assert "1 pairs matched" in capsys.readouterr().out
    assert cli.main(["match-pairs", str(tmp_path / "mixed.txt"), "--out", str(tmp_path / "m"), *common]) == 1
    assert "differ in size" in capsys.readouterr().err
    (tmp_path / "q.txt").write_text("3,4\n60,61\n")
    (tmp_path / "frames").mkdir()
    for i in range(6):
        (tmp_path / "frames" / f"{i}.png").write_bytes((data / f"{i}.png").read_bytes())
    assert cli.main(["match-video", str(tmp_path / "frames"), "--gap", "5", "--out", str(tmp_path / "v"),
                     "--queries", str(tmp_path / "q.txt"), *common]) == 0
    r = read_result(tmp_path / "v" / "f000000-f000005.npz")  # frames 0 and 5
    assert r["query"].tolist() == [[3, 4], [60, 61]]
    assert cli.main(["match-pairs", str(tmp_path / "good.txt"), "--out", str(tmp_path / "w"), "--workers", "2"]) == 2
    assert "needs --ray" in capsys.readouterr().err
    assert cli.main(["match-video", str(tmp_path / "nothing"), "--out", str(tmp_path / "n")]) == 2
