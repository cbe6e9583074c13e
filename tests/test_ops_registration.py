"""The fused ops as torch operators: opcheck (schema, fake implementations, AOT dispatch) for every
CPU implementation, and torch.compile tracing through them (no graph break at an op)."""
import shutil

import pytest
import torch

from mind_engine.engine.matching import search_boxes
from mind_engine.engine.tiers import make_tier
from mind_engine.model import MindNet
from mind_engine.ops import input_backward_match, match_reduce, window_gather, window_mul
from mind_engine.ops.dispatch import available
from mind_engine.ops.selfcheck import problem

pytestmark = pytest.mark.usefixtures("one_thread")
OPS = torch.ops.mind_engine
IMPLS = [i for i in ("torch", "cpp", "triton") if available(i, "cpu")]


def _args():
    p = problem()
    return {
        "window_gather": [(p["src"], p["origin"], 4, 6), (p["shared"], p["origin"], 4, 6)],
        "window_mul": [(p["g"], p["src"], p["origin"]), (p["g"], p["shared"], p["origin"])],
        "match_reduce": [(p["rows"], p["box"])],
        "input_backward_match": [(p["grad"], p["weight"], p["w_origin"], p["w_box"], *p["hw"])],
    }


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("op", ["window_gather", "window_mul", "match_reduce", "input_backward_match"])
def test_opcheck(op, impl):
    tests = ("test_schema", "test_faketensor", "test_aot_dispatch_dynamic")
    if impl == "triton":  # interpreted Triton is slow: the schema and fake tensors are what matter here
        tests = tests[:2]
    for args in _args()[op]:
        torch.library.opcheck(getattr(OPS, op).default, (*args, impl), test_utils=tests)


def _all_four(p):
    a = window_gather(p["src"], p["origin"], (4, 6))
    b = window_mul(p["g"], p["src"], p["origin"])
    c = match_reduce(p["rows"], p["box"])
    d = input_backward_match(p["grad"], p["weight"], p["w_origin"], p["w_box"], p["hw"])
    return a, b, *c, *d


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="inductor needs a C++ compiler on the CPU; none is installed")
def test_the_ops_compile_in_one_graph():
    """fullgraph=True: dynamo would raise at a graph break; inductor compiles around the ops."""
    p = problem()
    torch._dynamo.reset()
    got = torch.compile(_all_four, fullgraph=True)(p)
    for a, b in zip(got, _all_four(p)):
        assert torch.equal(a, b)


def test_a_windowed_chunk_breaks_no_graph_at_the_ops():
    """Tier 3's chunk (the windowed backward walk into the fused first layer) under dynamo: its
    graph breaks are the host-side window planning (data-dependent crop sizes in
    engine/windows.py), never one of the ops, and every op it calls is in a captured graph."""
    g = torch.Generator().manual_seed(0)
    model = MindNet(encoder=(4,), decoder=(4,), skips=())
    model.reset_parameters(g)
    i1, i3 = torch.rand(2, 1, 3, 8, 8, generator=g)
    tier = make_tier("t3", model.eval(), i1, i3)
    q = torch.tensor([[3, 4], [7, 0]])
    boxes = search_boxes(q, 3, (8, 8))
    torch._dynamo.reset()
    ex = torch._dynamo.explain(tier._run)(q, boxes, (8, 8), tier.kernels[2])
    at_ops = [r for r in ex.break_reasons if any("mind_engine/ops" in f.filename for f in r.user_stack)]
    assert not at_ops, [r.reason for r in at_ops]
    captured = {str(n.target) for gm in ex.graphs for n in gm.graph.nodes if n.op == "call_function"}
    assert {"mind_engine.window_gather", "mind_engine.window_mul", "mind_engine.input_backward_match"} <= captured
    torch._dynamo.reset()
