"""The bad-input battery: every case ends in an error that names the argument and what was
expected (or, for the accepted ones, in a right result), through the API and through the CLI."""
import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import mind_engine as me
from mind_engine import cli
from mind_engine.checks import MIN_MEMORY
from mind_engine.commands import match as match_command
from mind_engine.engine import budget
from mind_engine.weights import CheckpointError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory, net, pair):
    d = tmp_path_factory.mktemp("bad")
    ck = me.save_model(net, d / "tiny.safetensors")
    iio.imwrite(d / "a.png", pair[0])
    iio.imwrite(d / "b.png", pair[1])
    (d / "notimage.png").write_text("not an image")
    return d, ck


# ----------------------------------------------------------------------------- images

IMAGE_CASES = [
    ("different sizes", lambda a: a[:30], ValueError, "differ in size"),
    ("channels first", lambda a: a.transpose(2, 0, 1), ValueError, "channels first"),
    ("two channels", lambda a: a[..., :2], ValueError, "HxWx4 array"),
    ("empty", lambda a: a[:0], ValueError, "empty"),
    ("empty 1-D", lambda a: np.zeros(0, np.uint8), ValueError, "HxW, HxWx1"),
    ("tiny", lambda a: a[:8, :8], ValueError, "at least 16"),
    ("NaN pixels", lambda a: np.where(a > 128, np.nan, a / 255.0), ValueError, "NaN or inf"),
    ("Inf pixels", lambda a: np.where(a > 128, np.inf, a / 255.0), ValueError, "NaN or inf"),
    ("0-255 floats", lambda a: a.astype(np.float32), ValueError, r"0-255 floats\? divide by 255"),
    ("int32", lambda a: a.astype(np.int32), ValueError, "unsupported dtype int32"),
    ("bool", lambda a: a > 0, ValueError, "unsupported dtype bool"),
    ("complex", lambda a: a.astype(np.complex64), ValueError, "unsupported dtype complex64"),
    ("object", lambda a: a.astype(object), ValueError, "unsupported dtype object"),
    ("list", lambda a: a.tolist(), ValueError, "numpy array, a torch tensor or a path"),
    ("batch tensor", lambda a: torch.zeros(1, 3, 40, 50), ValueError, "a batch"),
]


@pytest.mark.parametrize("what, bad, error, message", IMAGE_CASES, ids=[c[0] for c in IMAGE_CASES])
def test_bad_images_name_the_problem(net, pair, what, bad, error, message):
    with pytest.raises(error, match=message):
        me.match(pair[0], bad(pair[1]), model=net)
    with pytest.raises(error, match=message):
        me.interpolate(pair[0], bad(pair[1]), model=net)


def test_grey_and_rgba_are_accepted_as_rgb(net, pair):
    base = me.match(*pair, stride=10, model=net)
    rgba = [np.dstack([a, np.full(a.shape[:2], 255, np.uint8)]) for a in pair]
    np.testing.assert_array_equal(me.match(*rgba, stride=10, model=net).pts1, base.pts1)
    grey = [a[..., 0] for a in pair]
    as_rgb = [np.repeat(g[..., None], 3, 2) for g in grey]
    np.testing.assert_array_equal(me.match(*grey, stride=10, model=net).pts1,
                                  me.match(*as_rgb, stride=10, model=net).pts1)


def test_missing_and_non_image_paths(net, files):
    d, _ = files
    with pytest.raises(FileNotFoundError, match="no such file"):
        me.match(d / "none.png", d / "b.png", model=net)
    with pytest.raises(ValueError, match="not an image file"):
        me.match(d / "notimage.png", d / "b.png", model=net)


def test_a_pair_too_large_for_free_memory_is_refused_with_the_figure(net, pair, monkeypatch):
    monkeypatch.setattr(budget, "available_bytes", lambda device: 1 << 20)
    with pytest.raises(MemoryError, match=r"50x40 \(WxH\) pair needs about [0-9.]+ GiB on cpu, 0.0 GiB is free"):
        me.match(*pair, stride=10, model=net)


def test_the_memory_estimate_counts_the_linearisation(net):
    from mind_engine.engine.linearisation import Linearisation

    x = torch.rand(1, 3, 64, 96)
    assert budget.linearisation_bytes(net, (64, 96)) == Linearisation(net, x, x).nbytes()
    four_k = budget.estimate_bytes(me.MindNet(), (3008, 4000), 0, 0)  # the paper's widths
    assert 10 * 2**30 < four_k < 100 * 2**30  # the ~10 GB a 4000x3000 pair climbed to, unannounced


# ----------------------------------------------------------------------------- queries, grids, radii


QUERY_CASES = [
    ("outside", dict(queries=[[50, 0]]), "outside the 50x40"),
    ("negative", dict(queries=[[-1, 3]]), "outside the 50x40"),
    ("not (N, 2)", dict(queries=[1, 2, 3]), r"\(N, 2\)"),
    ("NaN query", dict(queries=[[np.nan, 3]]), "NaN or inf"),
    ("strings", dict(queries=[["a", "b"]]), "numeric"),
    ("stride 0", dict(stride=0), "stride must be a positive integer"),
    ("stride -2", dict(stride=-2), "stride must be a positive integer"),
    ("stride 1.5", dict(stride=1.5), "stride must be a positive integer"),
    ("radius -1", dict(radius=-1), "radius must be None or a non-negative integer"),
    ("radius 2.5", dict(radius=2.5), "radius must be None or a non-negative integer"),
    ("tier", dict(tier="t9"), "unknown tier 't9'"),
    ("backend", dict(backend="tvm"), "unknown backend 'tvm'"),
    ("memory 0", dict(memory=0), "memory must be at least"),
    ("memory -5", dict(memory=-5), "memory must be at least"),
    ("memory 1", dict(memory=1), "memory must be at least"),
    ("memory str", dict(memory="1G"), "memory must be a number of bytes"),
    ("device foo", dict(device="foo"), "device='foo' is not a device"),
    ("device meta", dict(device="meta"), "runs on 'cpu' or 'cuda'"),
]


@pytest.mark.parametrize("what, kwargs, message", QUERY_CASES, ids=[c[0] for c in QUERY_CASES])
def test_bad_arguments_name_the_argument(net, pair, what, kwargs, message):
    with pytest.raises(ValueError, match=message):
        me.match(*pair, model=net, **kwargs)


def test_cuda_without_cuda_is_a_clear_error(net, pair, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for call in (lambda: me.match(*pair, model=net, device="cuda"),
                 lambda: me.interpolate(*pair, model=net, device="cuda"),
                 lambda: me.jacobian_rows(net, *pair, [[1, 1]], device="cuda"),
                 lambda: me.load_model(device="cuda:0")):
        with pytest.raises(ValueError, match="CUDA is not available here"):
            call()


def test_minimum_memory_is_accepted(net, pair):
    assert len(me.match(*pair, stride=20, model=net, memory=MIN_MEMORY)) == 4


@pytest.mark.parametrize("kwargs", [dict(queries=np.zeros((0, 2))), dict(queries=[]), dict(stride=100)],
                         ids=["zeros((0, 2))", "[]", "grid misses the image"])
def test_empty_queries_give_empty_matches(net, pair, kwargs):
    m = me.match(*pair, model=net, **kwargs)
    assert len(m) == 0 and m.pts1.shape == m.pts3.shape == m.query.shape == (0, 2) and m.score.shape == (0,)
    assert len(m.top(5)) == 0
    g1, g3 = me.jacobian_rows(net, *pair, np.zeros((0, 2)))
    assert g1.shape == g3.shape == (0, 3, 40, 50)


# ----------------------------------------------------------------------------- weights


def _corrupt(path, out, change):
    tensors = load_file(str(path))
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    change(tensors)
    save_file(tensors, str(out), metadata=meta)
    return out


def test_bad_weights_are_clear_errors(files, tmp_path):
    d, ck = files
    data = ck.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        me.load_model(tmp_path / "trunc.safetensors")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        me.load_model(tmp_path / "none.safetensors")
    (tmp_path / "img.safetensors").write_bytes((d / "a.png").read_bytes())
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        me.load_model(tmp_path / "img.safetensors")

    def nan(t):
        t["head.weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(CheckpointError, match=r"non-finite .* head.weight \(1 of 108 values\)"):
        me.load_model(_corrupt(ck, tmp_path / "nan.safetensors", nan))

    def widen(t):
        t["head.weight"] = torch.zeros(3, 5, 3, 3)
    with pytest.raises(CheckpointError, match=r"tensor head.weight: checkpoint has shape \(3, 5, 3, 3\)"):
        me.load_model(_corrupt(ck, tmp_path / "wide.safetensors", widen))

    def integers(t):  # loaded as float they would run, every weight truncated, every score 0
        t.update({k: v.to(torch.int32) for k, v in t.items()})
    with pytest.raises(CheckpointError, match=r"holds weights of dtype int32; a checkpoint's weights must be floating"):
        me.load_model(_corrupt(ck, tmp_path / "int.safetensors", integers))
    half = me.load_model(_corrupt(ck, tmp_path / "half.safetensors", lambda t: t.update(
        {k: v.half() for k, v in t.items()})))  # a float dtype other than float32 is still fine
    assert next(half.parameters()).dtype == torch.float32


def test_flipped_bytes_inside_tensors_are_caught(files, tmp_path):
    """An exponent byte set to 0xff in every float of the file's data turns them into inf/NaN."""
    _, ck = files
    data = bytearray(ck.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    for i in range(header, len(data), 4):  # little-endian fp32: bytes 3 and 2 hold the exponent
        data[i + 3] |= 0x7F
        data[i + 2] |= 0x80
    (tmp_path / "flipped.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="non-finite"):
        me.load_model(tmp_path / "flipped.safetensors")


# ----------------------------------------------------------------------------- CLI


def _cli(args, capsys):
    code = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


CLI_CASES = [
    ("--device foo", ["--device", "foo"], "--device='foo' is not a device"),
    ("--stride 0", ["--stride", "0"], "stride must be a positive integer"),
    ("--radius -3", ["--radius", "-3"], "radius must be None or a non-negative integer"),
    ("--top 0", ["--top", "0"], "--top must be a positive integer"),
    ("--out .txt", ["--out", "{d}/x.txt"], "--out {d}/x.txt: unsupported file type '.txt'"),
    ("--out folder", ["--out", "{d}"], "is a folder"),
    ("--json unwritable", ["--json", "{d}/a.png/m.json"], "cannot be written"),
    ("--weights missing", ["--weights", "{d}/none.safetensors"], "no checkpoint at"),
    ("--weights not one", ["--weights", "{d}/a.png"], "not a readable safetensors file"),
]


@pytest.mark.parametrize("what, extra, message", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_refuses_before_matching(files, capsys, monkeypatch, what, extra, message):
    d, ck = files
    ran = []
    monkeypatch.setattr(match_command, "run_match", lambda *a, **k: ran.append(1))
    extra = [e.format(d=d) for e in extra]
    weights = [] if "--weights" in extra else ["--weights", ck]
    code, out, err = _cli(["match", d / "a.png", d / "b.png", *weights, *extra], capsys)
    assert code == 2 and not ran, err
    assert err.startswith("mind-engine match: error:") and message.format(d=d) in err and "Traceback" not in err


def test_cli_cuda_without_cuda_is_one_line(files, capsys, monkeypatch):
    d, ck = files
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for cmd in (["match", d / "a.png", d / "b.png"], ["interpolate", d / "a.png", d / "b.png", "--out", d / "m.png"]):
        code, _, err = _cli([*cmd, "--weights", ck, "--device", "cuda"], capsys)
        assert code == 2 and "CUDA is not available here" in err and err.count("\n") == 1


def test_cli_empty_grid_and_progress_on_stderr(files, capsys):
    d, ck = files
    code, out, err = _cli(["match", d / "a.png", d / "b.png", "--weights", ck, "--stride", "100", "--json"], capsys)
    assert code == 0 and json.loads(out)["n"] == 0
    code, out, err = _cli(["match", d / "a.png", d / "b.png", "--weights", ck, "--stride", "20"], capsys)
    assert code == 0 and "mind_engine: matching 4 queries of a 50x40 pair" in err and "GiB" in err


def test_cli_ctrl_c_stops_with_one_line(files, capsys, monkeypatch):
    d, ck = files

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(match_command, "run_match", interrupted)
    code, _, err = _cli(["match", d / "a.png", d / "b.png", "--weights", ck], capsys)
    assert code == 130 and err == "mind-engine match: interrupted\n"
