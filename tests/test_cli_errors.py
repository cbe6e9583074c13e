"""Every bad command line, one table: exit status 2 and one line ``mind-engine <command>: error:``
naming the argument, no traceback, and no network run (``MindNet.forward`` fails the test)."""
import json
import os

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import mind_engine as me
from mind_engine import cli
from mind_engine.batch.store import ARRAYS, write_result
from safetensors.torch import save_file

from conftest import SMALL

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("clierr")
    torch.manual_seed(0)
    me.save_model(me.MindNet(**SMALL), d / "tiny.safetensors")
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        iio.imwrite(d / name, rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    (d / "one").mkdir()
    iio.imwrite(d / "one" / "0.png", rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    (d / "file.txt").write_text("a file")
    (d / "pairs.txt").write_text(f"{d}/a.png {d}/b.png\n")
    (d / "q.txt").write_text("1,2,3\n")
    (d / "q1.txt").write_text("3,4\n5\n")  # a line of one column
    (d / "q0.txt").write_text("# no points\n\n")
    state = {k: v.to(torch.int32) for k, v in me.MindNet(**SMALL).state_dict().items()}
    save_file(state, d / "int.safetensors", metadata={"format": "mind_engine/1",
                                                      "config": json.dumps(me.MindNet(**SMALL).config.to_dict())})
    (d / "junk.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"cut short" * 10)
    for name, manifest in (("brokenjson", '{"format": "mind_engine.batch/1", "pairs": ['), ("badshape", '{"pairs": "x"}')):
        (d / name).mkdir()
        write_result(d / name, "line000001", {k: np.zeros((0, 2) if k.startswith(("pts", "query")) else 0, np.float32)
                                               for k in ARRAYS},
                     {"key": "line000001", "img1": "a", "img3": "b", "fingerprint": "0" * 64, "width": 48,
                      "height": 40, "seconds_load": 0.0, "seconds_match": 0.0})
        (d / name / "manifest.json").write_text(manifest)
    return d


MATCH = ["match", "{d}/a.png", "{d}/b.png", "--weights", "{d}/tiny.safetensors"]
PAIRS = ["match-pairs", "{d}/pairs.txt", "--out", "{d}/out", "--weights", "{d}/tiny.safetensors"]
VIDEO = ["match-video", "{d}/one", "--out", "{d}/vout", "--weights", "{d}/tiny.safetensors"]
INTERP = ["interpolate", "{d}/a.png", "{d}/b.png", "--weights", "{d}/tiny.safetensors"]
CASES = [  # (argv, text the one line must hold)
    (MATCH + ["--stride", "1.5"], "--stride must be a positive integer, got 1.5"),
    (MATCH + ["--stride", "nan"], "--stride must be a positive integer, got nan"),
    (MATCH + ["--radius", "2.5"], "--radius must be None or a non-negative integer, got 2.5"),
    (MATCH + ["--top", "1.5"], "--top must be a positive integer, got 1.5"),
    (MATCH + ["--device", "tpu"], "--device='tpu' is not a device; expected 'cpu', 'cuda' or 'cuda:N'"),
    (MATCH + ["--json", "{d}/x.png", "--out", "{d}/x.png"], "--json {d}/x.png is also --out (the same file"),
    (MATCH + ["--out", "{d}/a.png"], "--out {d}/a.png is also img1"),
    (MATCH + ["--json", "{d}/tiny.safetensors"], "--json {d}/tiny.safetensors is also --weights"),
    (["match", "{d}/one", "{d}/b.png"], "img1 {d}/one is a folder, not an image file"),
    (["match", "{d}/a.png", "{d}/none.png"], "{d}/none.png: no such file"),
    (INTERP + ["--out", "{d}/mid"], "--out {d}/mid: unsupported file type '(none)'"),
    (INTERP + ["--out", "{d}/mid.txt"], "--out {d}/mid.txt: unsupported file type '.txt'"),
    (INTERP + ["--out", "{d}/one"], "--out {d}/one is a folder"),
    (INTERP + ["--out", "{d}/b.png"], "--out {d}/b.png is also img3"),
    (PAIRS + ["--stride", "31.9"], "--stride must be a positive integer, got 31.9"),
    (PAIRS + ["--radius", "2.5"], "--radius must be None or a non-negative integer, got 2.5"),
    (PAIRS + ["--threads", "0"], "--threads must be an integer in 1.."),
    (PAIRS + ["--threads", "99999"], f"--threads must be an integer in 1..{os.cpu_count()} (this machine's cores), "
                                     f"got 99999"),
    (PAIRS + ["--workers", "1.5"], "--workers must be a positive integer, got 1.5"),
    (PAIRS + ["--retries", "-1"], "--retries must be a non-negative integer, got -1"),
    (PAIRS + ["--device", "cuda:x"], "--device='cuda:x' is not a device"),
    (PAIRS + ["--queries", "{d}/q.txt"], "--queries {d}/q.txt line 1: expected two numbers x,y, got '1,2,3'"),
    (PAIRS + ["--queries", "{d}/q1.txt"], "--queries {d}/q1.txt line 2: expected two numbers x,y, got '5'"),
    (PAIRS + ["--queries", "{d}/q0.txt"], "--queries {d}/q0.txt holds no x,y line"),
    (PAIRS + ["--queries", "{d}/noq.txt"], "--queries {d}/noq.txt cannot be read: No such file or directory"),
    (PAIRS[:3] + ["{d}/brokenjson", "--stride", "8"] + PAIRS[4:],
     "{d}/brokenjson/manifest.json is not valid JSON: Expecting value: line 1 column 45 (char 44), and {d}/brokenjson "
     "holds 1 result file of other settings or another model (line000001.npz); use another output folder, or start "
     "over with --restart, which moves"),
    (PAIRS[:3] + ["{d}/badshape"] + PAIRS[4:], "{d}/badshape/manifest.json is not a manifest of this job format: its "
                                                "format is null"),
    (MATCH[:3] + ["--weights", "{d}/int.safetensors"], "{d}/int.safetensors holds weights of dtype int32; a "
                                                        "checkpoint's weights must be floating point"),
    (["export", "onnx", "--weights", "{d}/int.safetensors", "--out", "{d}/exported"], "holds weights of dtype int32"),
    (["match-video", "{d}/junk.mp4", "--out", "{d}/vout"], "cannot decode {d}/junk.mp4: "),
    (PAIRS + ["--out", "{d}/file.txt"], "--out {d}/file.txt is a file; give a folder"),
    (["match-pairs", "{d}/one", "--out", "{d}/out"], "{d}/one is a folder, not a pair list"),
    (["match-pairs", "{d}/nolist.txt", "--out", "{d}/out"], "{d}/nolist.txt: no such pair list"),
    (VIDEO + ["--gap", "0"], "--gap must be a positive integer, got 0"),
    (VIDEO, "{d}/one holds 1 frame(s): no two of them are 1 apart"),
    (["match-video", "{d}/a.png", "--out", "{d}/vout"], "{d}/a.png is an image file, not a video"),
    (["demo", "--stride", "0"], "--stride must be a positive integer, got 0"),
    (["demo", "--out", "{d}/file.txt"], "--out {d}/file.txt is a file; give a folder"),
    (["export", "onnx", "--opset", "2.5"], "--opset must be an integer in 18.."),
    (["export", "onnx", "--opset", "11", "--graphs", "forward"], "--opset must be an integer in 18.."),
    (["export", "onnx", "--out", "{d}/file.txt"], "--out {d}/file.txt is a file; give a folder"),
    (["export", "tensorrt", "--graph", "rows", "--out", "{d}/r.engine", "--height", "32", "1.5", "64"],
     "--height must be a positive integer, got 1.5"),
    (["export", "tensorrt", "--graph", "rows", "--out", "{d}/r.txt"], "--out {d}/r.txt: unsupported file type '.txt'"),
    (["export", "tensorrt", "--graph", "rows", "--out", "{d}/r.engine", "--workspace-gib", "-1"],
     "--workspace-gib must be a positive number, got -1"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(a[:1] + a[5:] if len(a) > 5 else a)[:60] for a, _ in CASES])
def test_bad_command_lines_end_in_one_line_naming_the_argument(argv, message, d, capsys, monkeypatch):
    monkeypatch.setattr(me.MindNet, "forward", lambda *a: pytest.fail("the network ran"))
    argv = [a.format(d=d) for a in argv]
    code = cli.main(argv)
    err = capsys.readouterr().err
    head = " ".join(argv[:1])
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(f"mind-engine {head}: error: ") and "Traceback" not in err, err
    assert message.format(d=d) in err, err
    assert not (d / "out" / "manifest.json").exists() and not (d / "vout").exists()


def test_an_unwritable_output_folder_is_named(d, capsys, monkeypatch):
    """Read-only folders (``os.access`` says so: the tests may run as root, whom nothing stops)."""
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    for argv, message in ((PAIRS, "--out {d}/out cannot be written (no write permission in {d})"),
                          (INTERP + ["--out", "{d}/mid.png"], "--out {d}/mid.png cannot be written")):
        assert cli.main([a.format(d=d) for a in argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message.format(d=d) in err, err


def test_a_cuda_device_on_a_cpu_only_machine_is_one_line(d, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main([a.format(d=d) for a in PAIRS + ["--device", "cuda"]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mind-engine match-pairs: error: --device='cuda': CUDA is not available here")
    assert not (d / "out").exists()


def test_upper_case_device_and_a_bom_in_the_pair_list_just_work(d, tmp_path, capsys):
    (tmp_path / "bom.csv").write_text(f"img1,img3\n{d}/a.png,{d}/b.png\n", encoding="utf-8-sig")
    argv = ["match-pairs", str(tmp_path / "bom.csv"), "--out", str(tmp_path / "out"), "--device", "CPU",
            "--weights", str(d / "tiny.safetensors"), "--stride", "16", "--radius", "8", "--no-progress"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert "1 pairs matched" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "out").glob("*.npz")] == ["line000002.npz"]


def test_export_is_a_sub_command_with_every_default_in_its_help(capsys):
    assert cli.main(["export", "onnx", "--help"]) == 0
    out = capsys.readouterr().out
    assert "(default: exported)" in out and "(default: 20)" in out
    assert cli.main(["export", "tensorrt", "--help"]) == 0
    out = capsys.readouterr().out
    assert "(default: fp32)" in out and "(default: (128, 128, 512))" in out


def test_every_option_of_every_command_says_its_default(capsys):
    """Each option with a value and a default has help that shows it (ArgumentDefaultsHelpFormatter)."""
    parser = cli.build_parser()
    subs = {name: sp for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict)
            for name, sp in a.choices.items()}
    subs.update({f"export {k}": v for a in subs["export"]._actions if isinstance(getattr(a, "choices", None), dict)
                 for k, v in a.choices.items()})
    silent = [f"{name} {a.option_strings[0]}" for name, sp in subs.items() if name != "train" for a in sp._actions
              if a.option_strings and a.nargs != 0 and not a.required and a.help
              and "default" not in sp.formatter_class(prog="x")._get_help_string(a).lower()]
    assert not silent, f"options whose help shows no default: {silent}"
    missing = [f"{name} {a.dest}" for name, sp in subs.items() if name != "train" for a in sp._actions
               if not a.help and a.dest != "help"]
    assert not missing, f"arguments with no help: {missing}"
