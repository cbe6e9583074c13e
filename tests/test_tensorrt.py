"""TensorRT engines against the torch paths. The engine tests run only where TensorRT >= 10 and a
CUDA GPU exist; everywhere else (this project's CI and development machines) they skip, saying
why. The TensorRT code has never run in this project: these tests are how it would first be
checked (on a GPU machine: pip install 'mind-engine[tensorrt]', then run this file)."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mind_engine as me
from mind_engine.images import pad_to_multiple
from mind_engine.engine.matching import search_boxes
from mind_engine.backends.tensorrt.build import Profile, available
from mind_engine.engine.oracle import Tier0

OK, WHY = available()
needs_trt = pytest.mark.skipif(not OK, reason=f"TensorRT engine tests skipped: {WHY}")

TINY = dict(encoder=(3, 3, 4, 4, 4), decoder=(4, 4, 4, 3, 3))


def test_profile_checks_its_sizes():
    with pytest.raises(ValueError, match="multiples of 32"):
        Profile(height=(100, 128, 128))
    with pytest.raises(ValueError, match="min <= opt <= max"):
        Profile(batch=(4, 2, 8))
    shapes = Profile(height=(32, 64, 128), width=(32, 96, 128), batch=(1, 8, 16)).shapes("match")
    assert shapes["i1"] == ((1, 3, 32, 32), (1, 3, 64, 96), (1, 3, 128, 128))
    assert shapes["boxes"] == ((1, 4), (8, 4), (16, 4))


def test_unavailability_is_explained():
    if OK:
        pytest.skip("TensorRT and a GPU are present")
    assert "TensorRT" in WHY


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MIND_ENGINE_CACHE", str(tmp_path_factory.mktemp("cache")))
    torch.manual_seed(0)
    m = me.MindNet(**TINY)
    for p in m.parameters():
        p.data.uniform_(-0.5, 0.5)
    yield m.eval().cuda()
    mp.undo()


@needs_trt
def test_forward_engine_matches_torch(net):
    from mind_engine.backends.tensorrt.runtime import TrtGraph

    g = TrtGraph(net, "forward", "fp32", Profile(height=(32, 64, 128), width=(32, 96, 128), batch=(1, 2, 4)))
    i1, i3 = torch.rand(2, 2, 3, 64, 96, device="cuda")
    out = g.run({"i1": i1, "i3": i3})["mid"]
    with torch.no_grad():
        ref = net(i1, i3)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))


@needs_trt
@pytest.mark.parametrize("hw", [(64, 96), (40, 50)], ids=["unpadded", "padded"])
def test_tensorrt_tier_fp32_matches_like_tier0(net, hw):
    from mind_engine.backends.tensorrt.runtime import TensorRTTier

    i1, i3 = torch.rand(2, 1, 3, *hw, device="cuda")
    p1, _ = pad_to_multiple(i1, 32)
    p3, _ = pad_to_multiple(i3, 32)
    g = torch.Generator().manual_seed(1)
    q = torch.stack([torch.randint(0, hw[1], (12,), generator=g), torch.randint(0, hw[0], (12,), generator=g)], 1)
    boxes = search_boxes(q, 9, hw)
    got = TensorRTTier(net, p1, p3).match(q.cuda(), boxes.cuda(), hw)
    ref = Tier0(net, p1, p3).match(q.cuda(), boxes.cuda(), hw)
    for (gi, _, gs), (ri, _, rs) in zip(got, ref):
        assert torch.equal(gi.cpu(), ri.cpu())
        torch.testing.assert_close(gs.cpu(), rs.cpu(), rtol=1e-4, atol=0)


@needs_trt
def test_api_match_tensorrt_equals_tier0(net):
    rng = np.random.default_rng(5)
    a, b = (rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(2))
    ref = me.match(a, b, stride=8, model=net, device="cuda", tier="t0")
    got = me.match(a, b, stride=8, model=net, device="cuda", backend="tensorrt")
    np.testing.assert_array_equal(got.pts1, ref.pts1)
    np.testing.assert_array_equal(got.pts3, ref.pts3)


@needs_trt
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_reduced_precision_engines_build_and_report_agreement(net, precision):
    """Reduced precision is not exact: this reports argmax agreement with fp32, it asserts none."""
    import tensorrt as trt

    from mind_engine.backends.tensorrt.runtime import TensorRTTier

    if not hasattr(trt.BuilderFlag, precision.upper()):
        pytest.skip(f"TensorRT {trt.__version__} has no {precision} builder flag")
    i1, i3 = torch.rand(2, 1, 3, 64, 96, device="cuda")
    q = torch.tensor([[3, 5], [40, 60], [95, 63], [50, 10]], device="cuda")
    boxes = torch.tensor([0, 0, 96, 64], device="cuda").repeat(4, 1)
    (i32, _, _), _ = TensorRTTier(net, i1, i3, precision="fp32").match(q, boxes, (64, 96))
    (ilo, _, _), _ = TensorRTTier(net, i1, i3, precision=precision).match(q, boxes, (64, 96))
    print(f"{precision} engine: argmax agreement with fp32 on {len(q)} queries: "
          f"{float((ilo == i32).float().mean()):.0%}")
    assert ilo.shape == i32.shape and ilo.dtype == torch.int64


@needs_trt
def test_build_script_writes_an_engine(net, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))
    try:
        import tensorrt_build
    finally:
        sys.path.pop(0)
    weights = tmp_path / "tiny.safetensors"
    me.save_model(net.cpu(), weights)
    net.cuda()
    out = tmp_path / "rows.engine"
    assert tensorrt_build.main(["--weights", str(weights), "--graph", "rows", "--out", str(out),
                                "--height", "32", "64", "64", "--width", "32", "96", "96",
                                "--batch", "1", "4", "8"]) == 0
    assert out.stat().st_size > 0
