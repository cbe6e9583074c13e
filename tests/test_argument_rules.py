"""The argument layer (``mind_engine.checks``), property-based and table-driven: integers of any
integral type are taken, non-integral values and bools refused with one message everywhere;
names are case-insensitive and anything else is refused with the choices; arrays of any byte
order and layout are read as plain ones; in-memory models are checked, cast, never changed."""
import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mind_engine as me
from mind_engine import checks
from mind_engine.images import to_tensor
from mind_engine.interfaces import MindMatcher

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = settings(max_examples=60, deadline=None)

INTEGRAL = [int, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint64, float, np.float32,
            lambda v: torch.tensor(v), lambda v: torch.tensor(v, dtype=torch.int16), lambda v: torch.tensor(float(v))]


@FAST
@given(value=st.integers(1, 127), kind=st.sampled_from(INTEGRAL))
def test_any_integral_type_is_an_integer(value, kind):
    for rule in (checks.check_stride, checks.check_radius, lambda v: checks.check_integer(v, "x", 1)):
        got = rule(kind(value))
        assert got == value and type(got) is int


@FAST
@given(value=st.integers(checks.MIN_MEMORY, 1 << 30),
       kind=st.sampled_from([int, np.int64, np.uint64, float, np.float64, lambda v: torch.tensor(v)]))
def test_any_integral_type_is_a_number_of_bytes(value, kind):
    assert checks.check_memory(kind(value), torch.device("cpu")) == value


NOT_INTEGERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda f: not (np.isfinite(f) and f == int(f))),
    st.sampled_from([True, False, np.bool_(True), torch.tensor(True), "4", b"4", [4], (4,), 4 + 0j,
                     torch.tensor([4]), np.array([4]), object()]))


@FAST
@given(bad=NOT_INTEGERS)
def test_non_integers_are_refused_with_one_message(bad):
    for rule, expected in ((checks.check_stride, "stride must be a positive integer"),
                           (checks.check_radius, "radius must be None or a non-negative integer")):
        with pytest.raises(ValueError) as e:
            rule(bad)
        assert str(e.value) == f"{expected}, got {bad!r}"


# one bad value, every entry point: the same message, before any network runs
ENTRY_POINTS = {  # entry(pair, net, an output folder, **kwargs)
    "match": lambda pair, net, out, **kw: me.match(*pair, model=net, **kw),
    "Engine.match": lambda pair, net, out, tier="auto", **kw: me.Engine(*pair, model=net, tier=tier).match(**kw),
    "Engine.refine": lambda pair, net, out, tier="auto", **kw: me.Engine(*pair, model=net, tier=tier).refine(**kw),
    "match_many": lambda pair, net, out, **kw: me.match_many([pair], out, model=net, **kw),
    "MindMatcher": lambda pair, net, out, **kw: MindMatcher(net, **kw),
}
BAD_VALUES = [
    ({"stride": 1.5}, "stride must be a positive integer, got 1.5"),
    ({"stride": 31.9}, "stride must be a positive integer, got 31.9"),
    ({"stride": True}, "stride must be a positive integer, got True"),
    ({"stride": 0, "queries": [[1, 2]]}, "stride must be a positive integer, got 0"),
    ({"radius": 2.5}, "radius must be None or a non-negative integer, got 2.5"),
    ({"radius": True}, "radius must be None or a non-negative integer, got True"),
    ({"tier": ["t3"]}, "unknown tier ['t3']; tier must be one of ['auto', 't0', 't1', 't2', 't3']"),
    ({"queries": np.ones((2, 2), bool)}, "queries must be an (N, 2) array of numeric (x, y) points"),
]


@pytest.mark.parametrize("entry, kwargs, message", [
    pytest.param(entry, kwargs, message, id=f"{entry} {kwargs}") for entry in ENTRY_POINTS for kwargs, message in BAD_VALUES
    if not (entry == "MindMatcher" and "queries" in kwargs)])  # MindMatcher takes no queries
def test_every_entry_point_refuses_alike(entry, kwargs, message, net, pair, monkeypatch, tmp_path):
    monkeypatch.setattr(me.MindNet, "forward", lambda *a: pytest.fail("the network ran"))
    with pytest.raises(ValueError) as e:
        ENTRY_POINTS[entry](pair, net, tmp_path / "out", **kwargs)
    assert str(e.value).startswith(message) and not (tmp_path / "out").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"queries": [[1e30, 3]]}, r"outside the 50x40 \(WxH\) image, e.g. \[\[1e\+30, 3.0\]\]"),
    ({"memory": 1e20}, r"memory=1e\+20 bytes is more than cpu has"),
    ({"device": ["cpu"]}, r"device=\['cpu'\] is not a device"),
    ({"backend": {"torch"}}, r"unknown backend \{'torch'\}; backend must be one of"),
])
def test_extreme_and_unhashable_values_are_named(kwargs, message, net, pair):
    with pytest.raises(ValueError, match=message):
        me.match(*pair, model=net, **kwargs)


def test_refine_chunk_and_top_are_checked(net, pair):
    engine = me.Engine(*pair, model=net)
    with pytest.raises(ValueError, match="chunk must be None or a positive integer, got -1"):
        engine.refine(stride=16, chunk=-1)
    assert len(engine.refine(stride=16, chunk=np.int64(2))) == len(engine.match(stride=16)) == 6
    m = engine.match(stride=16)
    for bad in (None, float("nan"), -1, 2.5):
        with pytest.raises(ValueError, match=f"k must be a non-negative integer, got {bad!r}"):
            m.top(bad)
    assert len(m.top(np.int64(2))) == len(m.top(torch.tensor(2))) == 2 and len(m.top(99)) == 6


@pytest.mark.parametrize("kwargs, plain", [
    (dict(stride=np.int64(16)), dict(stride=16)), (dict(stride=torch.tensor(16)), dict(stride=16)),
    (dict(stride=16.0), dict(stride=16)),
    (dict(stride=16, radius=np.uint8(8), memory=np.int64(1 << 26)), dict(stride=16, radius=8, memory=1 << 26)),
    (dict(stride=16, tier="T3"), dict(stride=16, tier="t3")), (dict(stride=16, device="CPU"), dict(stride=16)),
    (dict(stride=16, backend="Torch", tier=" t1 "), dict(stride=16, tier="t1"))])
def test_ordinary_python_values_give_the_plain_result(kwargs, plain, net, pair):
    m, ref = me.match(*pair, model=net, **kwargs), me.match(*pair, model=net, **plain)
    for field in ("pts1", "pts3", "score"):
        np.testing.assert_array_equal(getattr(m, field), getattr(ref, field))


# ----------------------------------------------------------------------------- array layouts

LAYOUTS = {
    "big-endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "fortran": np.asfortranarray,
    "strided view": lambda a: np.repeat(np.repeat(a, 2, 0), 2, 1)[::2, ::2],
    "reversed channels view": lambda a: a[..., ::-1].copy()[..., ::-1],
    "read-only": lambda a: np.lib.stride_tricks.as_strided(a, writeable=False),
}


@FAST
@given(seed=st.integers(0, 2**16), h=st.integers(16, 24), w=st.integers(16, 24),
       dtype=st.sampled_from(["u1", "u2", "f4", "f8", "f2"]), grey=st.booleans(),
       layout=st.sampled_from(list(LAYOUTS)))
def test_any_byte_order_and_layout_reads_as_the_plain_array(seed, h, w, dtype, grey, layout):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w) if grey else (h, w, 3)).astype(dtype)
    if dtype.startswith("f"):
        a /= 255
    assert torch.equal(to_tensor(LAYOUTS[layout](a)), to_tensor(np.ascontiguousarray(a)))


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # numpy's word on np.matrix itself
def test_np_matrix_is_a_grey_image(pair):
    grey = pair[0][..., 0]
    assert torch.equal(to_tensor(np.matrix(grey)), to_tensor(grey))


# ----------------------------------------------------------------------------- models


def _scaled(net, factor):
    m = copy.deepcopy(net)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(factor)
    return m


def _poisoned(net, value):
    m = copy.deepcopy(net)
    with torch.no_grad():
        m.head.weight[0, 0, 0, 0] = value
    return m


@pytest.mark.parametrize("make, error, message", [
    (lambda net: _poisoned(net, float("nan")), ValueError, r"non-finite \(NaN or inf\) weights.*head.weight \(1 of"),
    (lambda net: _poisoned(net, float("inf")), ValueError, "non-finite"),
    (lambda net: _scaled(net, 1e30), ValueError, "output at this image pair is not finite"),
    (lambda net: copy.deepcopy(net).to("meta"), ValueError, "model is on the meta device"),
    (lambda net: torch.nn.Conv2d(3, 3, 3), TypeError, "model must be a MindNet"),
], ids=["NaN", "inf", "1e30", "meta", "not a MindNet"])
@pytest.mark.parametrize("tier", ["t0", "t3"])
def test_broken_models_are_refused(make, error, message, tier, net, pair):
    model = make(net)
    with pytest.raises(error, match=message):
        me.match(*pair, model=model, stride=16, tier=tier)
    with pytest.raises(error, match=message):
        me.interpolate(*pair, model=model)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_float_models_run_as_a_float32_copy(dtype, net, pair):
    model = copy.deepcopy(net).to(dtype)
    as32 = copy.deepcopy(model).float()
    m = me.match(*pair, model=model, stride=16)
    np.testing.assert_array_equal(m.pts1, me.match(*pair, model=as32, stride=16).pts1)
    assert me.interpolate(*pair, model=model).shape == pair[0].shape
    assert all(p.dtype == dtype for p in model.parameters())  # the caller's model is left as it was


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
@pytest.mark.parametrize("tier", ["t0", "t1", "t3"])
def test_every_tier_runs_under_no_grad_and_inference_mode(mode, tier, net, pair):
    ref = me.match(*pair, model=net, stride=16, tier="t0")
    with mode():
        m = me.match(*pair, model=net, stride=16, tier=tier)
    np.testing.assert_array_equal(m.pts1, ref.pts1)
    np.testing.assert_array_equal(m.pts3, ref.pts3)


def test_mind_matcher_never_changes_the_caller_s_model(net):
    model = copy.deepcopy(net).eval()
    matcher = MindMatcher(model, stride=np.int64(16), radius=torch.tensor(8), top=np.int32(3), min_score=np.float32(0))
    matcher.train()
    matcher.to(torch.float64)
    assert not model.training and all(p.dtype == torch.float32 for p in model.parameters())
    assert (matcher.stride, matcher.radius, matcher.top) == (16, 8, 3)
    for bad, message in (({"min_score": float("nan")}, "min_score must be a finite number"),
                         ({"top": -1}, "top must be None or a non-negative integer"),
                         ({"tier": "t9"}, "unknown tier 't9'")):
        with pytest.raises(ValueError, match=message):
            MindMatcher(model, **bad)
