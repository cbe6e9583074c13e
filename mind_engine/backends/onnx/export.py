"""ONNX export of MindNet and of the tier-1 Jacobian-row graph (``mind_engine.backends.onnx``).

Three graphs, all with dynamic H and W (multiples of the network's ``config.multiple``) and a
dynamic batch:

``forward``  (i1, i3) -> mid                     the interpolation network, any batch N
``rows``     (i1, i3, queries) -> (g1, g3)       ``engine.transpose.LinearisedMind``: the forward
                                                  run once, then the transposed network on one
                                                  seed per (x, y) query
``match``    (i1, i3, queries, boxes) ->         ``rows`` followed by ``_torch_impl.match_reduce``
             (idx1, peak1, score1, idx3, peak3, score3)   on each image's rows

Images are float32 in [0, 1], (1, 3, H, W) for ``rows`` and ``match``; ``queries`` (B, 2) int64
(x, y); ``boxes`` (B, 4) int64 half-open [x0, y0, x1, y1). ``match`` reduces over the whole map
it is given, so it equals ``matching.reduce_rows`` only when the caller's image needed no
padding; ``OnnxRuntimeTier`` uses it then and otherwise reduces the ``rows`` output in torch.

``match`` is ``rows`` and a separately exported reduction joined with ``onnx.compose``, so the
costly ``rows`` export (torch.export + onnxscript, tens of seconds) happens once for both.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import sys
import warnings
from functools import lru_cache

import torch
from torch import nn

from ... import model as model_module
from ...checks import check_choice, check_integer
from ...safe_write import write_bytes
from ...engine import linearisation, transpose
from ...engine.transpose import LinearisedMind
from ...model import MindNet
from ...ops import _torch_impl
from ...ops._torch_impl import match_reduce
from ...weights import weights_sha256

OPSET = 20
# torch.onnx's exporter writes opset 18 and above itself; for a lower one it converts with onnx's
# version converter and, where that fails, keeps 18 with a warning: such opsets are refused.
MIN_OPSET = 18
# torch.onnx's exporter logs "torchvision is not installed. Skipping torchvision::<op>" (a
# WARNING, one line per torchvision op it would register) on every export without torchvision;
# MindNet uses none of those ops.
REGISTRY_LOGGER = "torch.onnx._internal.exporter._registration"
GRAPHS = ("forward", "rows", "match")
INPUTS = {"forward": ["i1", "i3"], "rows": ["i1", "i3", "queries"],
          "match": ["i1", "i3", "queries", "boxes"], "reduce": ["g1", "g3", "boxes"]}
OUTPUTS = {"forward": ["mid"], "rows": ["g1", "g3"],
           "match": ["idx1", "peak1", "score1", "idx3", "peak3", "score3"]}
OUTPUTS["reduce"] = OUTPUTS["match"]
MAX_SIDE = 32 * 1024  # bound given to torch.export for H and W (symbolic only)
MAX_BATCH = 1 << 20


class ReduceGraph(nn.Module):
    """(g1, g3, boxes) -> the reference reduction of each image's rows (the tail of ``match``)."""

    def forward(self, g1, g3, boxes):
        return (*match_reduce(g1, boxes), *match_reduce(g3, boxes))


def weights_hash(model: MindNet) -> str:
    """``mind_engine.weights.weights_sha256`` shortened to 16 hex digits, for file names."""
    return weights_sha256(model)[:16]


@lru_cache(maxsize=1)
def code_hash() -> str:
    """sha256 of the sources that define the graphs, so an edited linearisation is re-exported."""
    mods = (model_module, linearisation, transpose, _torch_impl, sys.modules[__name__])
    return hashlib.sha256("".join(inspect.getsource(m) for m in mods).encode()).hexdigest()[:8]


def _example_args(graph: str):
    """Tracing inputs; the query batch (5) differs from every static size so it stays symbolic."""
    i1, i3 = torch.rand(2, 2 if graph == "forward" else 1, 3, 64, 96)
    q = torch.tensor([[3, 5], [40, 60], [95, 63], [0, 0], [7, 9]])
    boxes = torch.tensor([[0, 0, 96, 64], [30, 50, 50, 64], [80, 40, 96, 64], [0, 0, 8, 8], [0, 0, 96, 64]])
    g = torch.rand(2, 5, 3, 64, 96)
    return {"forward": (i1, i3), "rows": (i1, i3, q), "reduce": (g[0], g[1], boxes)}[graph]


def _dynamic_shapes(graph: str, multiple: int):
    Dim = torch.export.Dim
    h32, w32 = Dim("h32", min=1, max=MAX_SIDE // multiple), Dim("w32", min=1, max=MAX_SIDE // multiple)
    hw = {2: multiple * h32, 3: multiple * w32}
    if graph == "forward":
        n = Dim("n", min=1, max=MAX_BATCH)
        return ({0: n, **hw}, {0: n, **hw})
    b = Dim("b", min=1, max=MAX_BATCH)
    if graph == "rows":
        return (hw, hw, {0: b})
    return ({0: b, **hw}, {0: b, **hw}, {0: b})


def _remainder_scalar(self, other):
    """aten.remainder.Scalar with a symbolic divisor (``idx % W`` in the reduction, W dynamic):
    torch's own translation wants a Python number. ONNX Mod with fmod=0 takes the divisor's sign,
    as torch.remainder does."""
    from onnxscript import opset20 as op

    return op.Mod(self, op.CastLike(other, self), fmod=0)


class _NoTorchvisionNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("torchvision is not installed")


@contextlib.contextmanager
def no_torchvision_notices():
    """Inside, the exporter's "torchvision is not installed. Skipping ..." lines are dropped;
    everything else it logs still shows."""
    logger, quiet = logging.getLogger(REGISTRY_LOGGER), _NoTorchvisionNotice()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _export_part(module: nn.Module, graph: str, opset: int, multiple: int):
    """One module through torch.export and onnxscript to an (unchecked) ModelProto."""
    with torch.no_grad(), warnings.catch_warnings(), no_torchvision_notices():
        warnings.simplefilter("ignore")  # the exporter's deprecation and renaming chatter
        program = torch.onnx.export(
            module.eval(), _example_args(graph), dynamo=True, opset_version=opset,
            input_names=INPUTS[graph], output_names=OUTPUTS[graph],
            dynamic_shapes=_dynamic_shapes(graph, multiple), optimize=True, verbose=False,
            custom_translation_table={torch.ops.aten.remainder.Scalar: _remainder_scalar})
    return program.model_proto


def _join_match(rows, reduce):
    """``rows`` feeding ``reduce``: the ``match`` graph (rows' inner names prefixed apart)."""
    from onnx import compose

    rows = compose.add_prefix(rows, "rows/", rename_inputs=False, rename_outputs=False)
    return compose.merge_models(rows, reduce, io_map=[("g1", "g1"), ("g3", "g3")])


def input_rule(graph: str, multiple: int) -> str:
    """What ``graph`` takes, in words, for the file's doc string and metadata and for the
    ``mind-engine export`` command to print: a file alone does not say that sizes must be padded."""
    images = f"i1, i3: float32 ({'N' if graph == 'forward' else '1'}, 3, H, W) images in [0, 1]"
    takes = {"forward": "", "rows": "; queries: int64 (B, 2) x, y",
             "match": "; queries: int64 (B, 2) x, y; boxes: int64 (B, 4) half-open [x0, y0, x1, y1)"}[graph]
    gives = {"forward": "mid: the (N, 3, H, W) middle frame", "rows": "g1, g3: (B, 3, H, W) Jacobian rows",
             "match": "the peaks and scores of each query's rows, reduced over the whole map given (equal to "
                      "mind_engine's only for images that needed no padding)"}[graph]
    return (f"mind_engine {graph} graph. Inputs {images}{takes}. H and W must be multiples of {multiple}: other "
            f"sizes fail in the runtime. Pad each image at the bottom and right by repeating its last row and "
            f"column to the next multiple (mind_engine.images.pad_to_multiple, as mind_engine.match does) and crop "
            f"what comes out to the image; points keep their coordinates. Outputs {gives}.")


def max_opset() -> int:
    """The highest opset both onnx (the checker) and onnxscript (the exporter's ops) know."""
    import onnx
    import onnxscript.onnx_opset as ops

    return min(onnx.defs.onnx_opset_version(),
               max(int(n[5:]) for n in dir(ops) if n.startswith("opset") and n[5:].isdigit()))


def check_opset(opset, name: str = "opset") -> int:
    """An opset this exporter writes as asked: MIN_OPSET..``max_opset()``."""
    top = max_opset()
    try:
        n = check_integer(opset, name, MIN_OPSET)
    except ValueError:
        n = None
    if n is None or n > top:
        raise ValueError(f"{name} must be an integer in {MIN_OPSET}..{top} (the opsets the exporter writes as "
                         f"asked, with the onnx and onnxscript installed here), got {opset!r}")
    return n


def model_opset(proto) -> int | None:
    """The default (ONNX) domain's opset a ModelProto imports."""
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def check_exported(proto, graph: str, opset: int, where: str) -> None:
    """``proto`` (``where``: the file it was read from, or "the export") is ``graph`` at ``opset``:
    its opset, input and output names as asked, or a one-line ValueError."""
    got = {"opset": model_opset(proto), "inputs": [i.name for i in proto.graph.input],
           "outputs": [o.name for o in proto.graph.output]}
    want = {"opset": opset, "inputs": INPUTS[graph], "outputs": OUTPUTS[graph]}
    for k in want:
        if got[k] != want[k]:
            raise ValueError(f"{where} is not the {graph} graph asked for: its {k} {got[k]}, not {want[k]}")


def export_onnx(model: MindNet, graph: str, path=None, opset: int = OPSET, rows=None):
    """Export ``graph`` ("forward", "rows" or "match") of the float32 CPU ``model`` to ONNX at
    ``opset`` (``check_opset``), checked with ``onnx.checker`` (full check, shape inference
    included) and for its opset, inputs and outputs (``check_exported``). For "match", ``rows``
    may be the already exported rows ModelProto, saving its export. Writes ``path`` if given
    (``safe_write``), read back and checked again; returns the ModelProto."""
    import onnx

    graph = check_choice(graph, "graph", GRAPHS)
    opset = check_opset(opset)
    p = next(model.parameters())
    if p.dtype != torch.float32 or p.device.type != "cpu":
        raise ValueError("export a float32 CPU model (precision is chosen at TensorRT build time)")
    m = model.config.multiple
    if graph == "forward":
        proto = _export_part(model, "forward", opset, m)
    elif graph == "rows":
        proto = _export_part(LinearisedMind(model), "rows", opset, m)
    else:
        rows = rows if rows is not None else _export_part(LinearisedMind(model), "rows", opset, m)
        proto = _join_match(rows, _export_part(ReduceGraph(), "reduce", opset, m))
    proto.doc_string = input_rule(graph, m)
    onnx.helper.set_model_props(proto, {
        "mind_engine.graph": graph, "mind_engine.config": json.dumps(model.config.to_dict()),
        "mind_engine.weights": weights_hash(model), "mind_engine.code": code_hash(),
        "mind_engine.input_multiple": str(m), "mind_engine.inputs": input_rule(graph, m)})
    onnx.checker.check_model(proto, full_check=True)
    check_exported(proto, graph, opset, "the export")
    if path is not None:
        write_bytes(path, proto.SerializeToString())
        check_exported(onnx.load(str(path)), graph, opset, str(path))
    return proto
