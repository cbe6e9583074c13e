"""ONNX export and ONNX Runtime (CPU provider) parity against the torch paths, on a tiny network.

forward: MindNet; rows: tier 0 (one autograd.grad per query), float32, to 1e-5 of each row's
largest entry (ORT's conv kernels sum in another order); match: tier 0's rows reduced by the
reference reduction, the same peaks; OnnxRuntimeTier and match(..., backend="onnxruntime"):
tier 0's matches, padded and unpadded images. Single-threaded, like the rest of CI.
"""

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx", reason="ONNX export tests need onnx: pip install 'mind-engine[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime parity tests need onnxruntime")
pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")

import mind_engine as me  # noqa: E402
from mind_engine.backends.onnx import cache as obc, runtime as obr  # noqa: E402
from mind_engine.ops._torch_impl import match_reduce  # noqa: E402
from mind_engine.images import pad_to_multiple  # noqa: E402
from mind_engine.engine.matching import search_boxes  # noqa: E402
from mind_engine.engine.oracle import Tier0  # noqa: E402

TINY = dict(encoder=(3, 3, 4, 4, 4), decoder=(4, 4, 4, 3, 3))


@pytest.fixture(scope="module", autouse=True)
def own_cache(tmp_path_factory, one_thread):  # one thread: OrtGraph sessions follow torch's count
    mp = pytest.MonkeyPatch()
    mp.setenv("MIND_ENGINE_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    m = me.MindNet(**TINY)
    for p in m.parameters():  # non-trivial slopes and biases so every branch of the backward matters
        p.data.uniform_(-0.5, 0.5)
    return m.eval()


def _session(path_or_proto):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    src = path_or_proto.SerializeToString() if isinstance(path_or_proto, onnx.ModelProto) else str(path_or_proto)
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def _pair(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 1, 3, h, w, generator=g)


def _queries(h, w, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    q = torch.stack([torch.randint(0, w, (n,), generator=g), torch.randint(0, h, (n,), generator=g)], 1)
    return torch.cat([q, torch.tensor([[0, 0], [w - 1, h - 1], [w - 1, 0], [0, h - 1]])])


def _rel_err(got, ref):
    ref = torch.as_tensor(ref).double()
    return float((torch.as_tensor(got).double() - ref).abs().max() / ref.abs().max())


def test_forward_export_is_checked_dynamic_and_matches_torch(net):
    model = onnx.load(str(obc.cached_onnx(net, "forward")))
    onnx.checker.check_model(model, full_check=True)
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input]
    assert all(isinstance(d[k], str) for d in dims for k in (0, 2, 3)), dims
    sess = _session(obc.cached_onnx(net, "forward"))
    for n, h, w in [(1, 64, 96), (2, 32, 128), (1, 96, 32)]:
        i1, i3 = torch.rand(2, n, 3, h, w)
        (mid,) = sess.run(None, {"i1": i1.numpy(), "i3": i3.numpy()})
        with torch.no_grad():
            ref = net(i1, i3)
        assert _rel_err(mid, ref) < 1e-5


def test_rows_graph_equals_tier0(net):
    path = obc.cached_onnx(net, "rows")
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    sess = _session(path)
    for h, w in [(64, 96), (32, 64)]:
        i1, i3 = _pair(h, w)
        q = _queries(h, w, 6)
        g1, g3 = sess.run(None, {"i1": i1.numpy(), "i3": i3.numpy(), "queries": q.numpy()})
        r1, r3 = Tier0(net, i1, i3).rows(q)
        for got, ref in ((g1, r1), (g3, r3)):
            for k in range(len(q)):  # each row against its own largest entry
                assert _rel_err(got[k], ref[k]) < 1e-5, (h, w, k)


def test_match_graph_gives_the_reference_peaks(net):
    path = obc.cached_onnx(net, "match")
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    h, w = 64, 96
    i1, i3 = _pair(h, w, seed=3)
    q = _queries(h, w, 8, seed=4)
    x, y = q[:, 0], q[:, 1]
    boxes = torch.stack([(x - 7).clamp(min=0), (y - 7).clamp(min=0), (x + 8).clamp(max=w), (y + 8).clamp(max=h)], 1)
    boxes[:3] = torch.tensor([0, 0, w, h])  # some whole-image searches too
    out = _session(path).run(None, {"i1": i1.numpy(), "i3": i3.numpy(), "queries": q.numpy(), "boxes": boxes.numpy()})
    r1, r3 = Tier0(net, i1, i3).rows(q)
    ref = [*match_reduce(r1, boxes), *match_reduce(r3, boxes)]
    for k in (0, 3):  # idx: the same argmax
        np.testing.assert_array_equal(out[k], ref[k].numpy())
    for k in (1, 2, 4, 5):  # peak and score
        np.testing.assert_allclose(out[k], ref[k].numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("hw", [(64, 96), (40, 50)], ids=["unpadded", "padded"])
def test_onnxruntime_tier_matches_like_tier0(net, hw):
    i1, i3 = _pair(*hw, seed=5)
    p1, _ = pad_to_multiple(i1, 32)
    p3, _ = pad_to_multiple(i3, 32)
    q = _queries(*hw, 6, seed=6)
    boxes = search_boxes(q, 9, hw)
    tier = obr.OnnxRuntimeTier(net, p1, p3)
    assert (tier.backend, tier.name) == ("onnxruntime", "t1")
    tier.step = 4  # several runs per call
    got, ref = tier.match(q, boxes, hw), Tier0(net, p1, p3).match(q, boxes, hw)
    for (gi, gp, gs), (ri, rp, rs) in zip(got, ref):
        np.testing.assert_array_equal(gi.numpy(), ri.numpy())
        np.testing.assert_allclose(gs.numpy(), rs.numpy(), rtol=1e-5)
    g1, _ = tier.rows(q[:2])
    assert _rel_err(g1, Tier0(net, p1, p3).rows(q[:2])[0]) < 1e-5


@pytest.mark.parametrize("hw", [(64, 96), (40, 50)], ids=["unpadded", "padded"])
def test_api_match_onnxruntime_equals_tier0(net, hw):
    rng = np.random.default_rng(5)
    a, b = (rng.integers(0, 256, hw + (3,), dtype=np.uint8) for _ in range(2))
    ref = me.match(a, b, stride=8, model=net, tier="t0")
    got = me.match(a, b, stride=8, model=net, backend="onnxruntime")
    np.testing.assert_array_equal(got.pts1, ref.pts1)
    np.testing.assert_array_equal(got.pts3, ref.pts3)
    np.testing.assert_allclose(got.score, ref.score, rtol=1e-5)


def test_exports_are_cached_per_weights(net):
    p1 = obc.cached_onnx(net, "forward")
    assert p1.is_relative_to(obc.cache_dir()) and obc.cached_onnx(net, "forward") == p1
    assert obc.weights_hash(net) in p1.name and obc.code_hash() in p1.name
    assert obc.weights_hash(me.MindNet(**TINY)) != obc.weights_hash(net)


def test_cuda_images_without_cuda_provider_fall_back_to_the_cpu():
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed: there is no fallback to see")
    with pytest.warns(RuntimeWarning, match="no CUDAExecutionProvider"):
        assert obr.providers_for(torch.device("cuda")) == ["CPUExecutionProvider"]


def test_tensorrt_rewrite_of_pool_indices_is_exact_in_onnxruntime(net):
    """TensorRT cannot parse MaxPool's Indices output; the rewrite that removes it must compute
    exactly the same rows, ties in the pooling windows included (constant image regions)."""
    from mind_engine.backends.tensorrt.onnx_surgery import without_pool_indices

    original = onnx.load(str(obc.cached_onnx(net, "rows")))
    rewritten = without_pool_indices(original)
    onnx.checker.check_model(rewritten, full_check=True)
    assert any(n.op_type == "MaxPool" and len(n.output) > 1 for n in original.graph.node)
    assert not any(n.op_type == "MaxPool" and len(n.output) > 1 and n.output[1] for n in rewritten.graph.node)
    h, w = 64, 96
    i1, i3 = _pair(h, w, seed=7)
    i1[..., :, w // 2:] = 0.3  # constant regions: equal activations, ties in every pooling window
    i3[..., h // 2:, :] = 0.7
    q = torch.tensor([[0, 0], [w - 1, h - 1], [w // 2 + 3, 5], [4, h // 2 + 2], [70, 40]])
    feed = {"i1": i1.numpy(), "i3": i3.numpy(), "queries": q.numpy()}
    a, b = _session(original).run(None, feed), _session(rewritten).run(None, feed)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    r1, _ = Tier0(net, i1, i3).rows(q)
    assert _rel_err(b[0], r1) < 1e-5


def test_each_file_says_that_sizes_must_be_multiples_of_32_and_the_command_prints_it(net, tmp_path, capsys,
                                                                                      monkeypatch):
    from mind_engine import cli
    from mind_engine.backends.onnx import export as obe

    path = obc.cached_onnx(net, "forward")
    sess = _session(path)
    meta = sess.get_modelmeta()
    assert "H and W must be multiples of 32" in meta.description and "pad_to_multiple" in meta.description
    assert meta.custom_metadata_map["mind_engine.input_multiple"] == "32"
    assert meta.custom_metadata_map["mind_engine.graph"] == "forward"
    i1 = np.zeros((1, 3, 48, 48), np.float32)
    with pytest.raises(Exception, match="Concat"):  # what the file says: other sizes fail in the runtime
        sess.run(None, {"i1": i1, "i3": i1})
    for graph in ("rows", "match"):
        assert "multiples of 32" in onnx.load(str(obc.cached_onnx(net, graph))).doc_string
    me.save_model(net, tmp_path / "w.safetensors")
    (tmp_path / "x").mkdir()  # the stand-in export below writes the cached file, without export_onnx's mkdir
    proto = onnx.load(str(path))  # the stand-in export writes and returns it, as export_onnx does
    monkeypatch.setattr(obe, "export_onnx", lambda model, graph, out, **kw: (onnx.save_model(proto, out), proto)[1])
    assert cli.main(["export", "onnx", "--weights", str(tmp_path / "w.safetensors"), "--out", str(tmp_path / "x"),
                     "--graphs", "forward"]) == 0
    out = capsys.readouterr().out
    assert "height and width are multiples of 32" in out
    assert out.index("forward.onnx: exporting the forward graph...") < out.index("forward.onnx: exported and checked")


# ----------------------------------------------------------------------------- opsets (issue 40)


@pytest.mark.parametrize("opset", [9, 11, 17, 100, 2.5])
def test_an_opset_the_exporter_does_not_write_as_asked_is_refused_in_one_line(net, opset):
    from mind_engine.backends.onnx.export import MIN_OPSET, export_onnx, max_opset

    with pytest.raises(ValueError, match=rf"opset must be an integer in {MIN_OPSET}\.\.{max_opset()} .*got {opset}"):
        export_onnx(net, "forward", opset=opset)


def test_the_cli_refuses_an_opset_before_exporting(tmp_path, capsys):
    from mind_engine.cli import main

    assert main(["export", "onnx", "--graphs", "forward", "--opset", "11", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("mind-engine export: error: --opset must be an integer in 18..")
    assert not list(tmp_path.iterdir())


def test_the_file_has_the_opset_asked_for_read_back_and_a_full_disk_keeps_the_old_file(net, tmp_path, monkeypatch):
    import errno
    import os

    from mind_engine.backends.onnx.export import check_exported, export_onnx, model_opset
    from mind_engine.safe_write import WriteError

    path = tmp_path / "forward.onnx"
    path.write_bytes(b"old")

    def full(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "fsync", full)
        with pytest.raises(WriteError, match="forward.onnx could not be written: the disk is full"):
            export_onnx(net, "forward", path, opset=19)
    assert path.read_bytes() == b"old"
    export_onnx(net, "forward", path, opset=19)
    proto = onnx.load(str(path))
    assert model_opset(proto) == 19
    proto.opset_import[0].version = 18
    with pytest.raises(ValueError, match=r"not the forward graph asked for: its opset 18, not 19"):
        check_exported(proto, "forward", 19, str(path))
    proto.graph.output[0].name = "other"
    with pytest.raises(ValueError, match=r"its outputs \['other'\], not \['mid'\]"):
        check_exported(proto, "forward", 18, str(path))
