"""ONNX export of MindNet and of the T1 Jacobian-row graph, and the ONNX Runtime backend.

Three graphs, all with dynamic H and W (multiples of 32) and a dynamic batch:

``forward``  (i1, i3) -> mid                     the interpolation network, any batch N
``rows``     (i1, i3, queries) -> (g1, g3)       ``linearised.LinearisedMind``: the forward run
                                                  once, then the transposed network on one seed
                                                  per (x, y) query
``match``    (i1, i3, queries, boxes) ->         ``rows`` followed by ``_torch_impl.match_reduce``
             (idx1, peak1, score1, idx3, peak3, score3)   on each image's rows

Images are float32 in [0, 1], (1, 3, H, W) for ``rows`` and ``match``; ``queries`` (B, 2) int64
(x, y); ``boxes`` (B, 4) int64 half-open [x0, y0, x1, y1). ``match`` reduces over the whole map
it is given, so it equals ``matching.reduce_rows`` only when the caller's image needed no
padding; ``OnnxRuntimeTier`` uses it then and otherwise reduces the ``rows`` output in torch.

``match`` is ``rows`` and a separately exported reduction joined with ``onnx.compose``, so the
costly ``rows`` export (torch.export + onnxscript, tens of seconds) happens once for both.
Exported files are cached under ``cache_dir()/onnx``, named by graph, weights hash, a hash of the
code that defines the graphs, torch version and opset: one file serves every image size.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import _torch_impl, linearised
from . import model as model_module
from ._torch_impl import match_reduce
from .linearised import LinearisedMind
from .matching import RowsTier
from .tier1 import DEFAULT_MEMORY, seeds_per_chunk
from .model import MULTIPLE, MindNet

OPSET = 20
GRAPHS = ("forward", "rows", "match")
INPUTS = {"forward": ["i1", "i3"], "rows": ["i1", "i3", "queries"],
          "match": ["i1", "i3", "queries", "boxes"], "reduce": ["g1", "g3", "boxes"]}
OUTPUTS = {"forward": ["mid"], "rows": ["g1", "g3"],
           "match": ["idx1", "peak1", "score1", "idx3", "peak3", "score3"]}
OUTPUTS["reduce"] = OUTPUTS["match"]
MAX_SIDE = 32 * 1024  # bound given to torch.export for H and W (symbolic only)
MAX_BATCH = 1 << 20
RUN_MEMORY = DEFAULT_MEMORY  # bytes of activations one run of the rows or match graph may hold


class ReduceGraph(nn.Module):
    """(g1, g3, boxes) -> the reference reduction of each image's rows (the tail of ``match``)."""

    def forward(self, g1, g3, boxes):
        return (*match_reduce(g1, boxes), *match_reduce(g3, boxes))


def _example_args(graph: str):
    """Tracing inputs; the query batch (5) differs from every static size so it stays symbolic."""
    i1, i3 = torch.rand(2, 2 if graph == "forward" else 1, 3, 64, 96)
    q = torch.tensor([[3, 5], [40, 60], [95, 63], [0, 0], [7, 9]])
    boxes = torch.tensor([[0, 0, 96, 64], [30, 50, 50, 64], [80, 40, 96, 64], [0, 0, 8, 8], [0, 0, 96, 64]])
    g = torch.rand(2, 5, 3, 64, 96)
    return {"forward": (i1, i3), "rows": (i1, i3, q), "reduce": (g[0], g[1], boxes)}[graph]


def _dynamic_shapes(graph: str):
    Dim = torch.export.Dim
    h32, w32 = Dim("h32", min=1, max=MAX_SIDE // MULTIPLE), Dim("w32", min=1, max=MAX_SIDE // MULTIPLE)
    hw = {2: MULTIPLE * h32, 3: MULTIPLE * w32}
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


def _export_part(module: nn.Module, graph: str, opset: int):
    """One module through torch.export and onnxscript to an (unchecked) ModelProto."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and renaming chatter
        program = torch.onnx.export(
            module.eval(), _example_args(graph), dynamo=True, opset_version=opset,
            input_names=INPUTS[graph], output_names=OUTPUTS[graph],
            dynamic_shapes=_dynamic_shapes(graph), optimize=True, verbose=False,
            custom_translation_table={torch.ops.aten.remainder.Scalar: _remainder_scalar})
    return program.model_proto


def _join_match(rows, reduce):
    """``rows`` feeding ``reduce``: the ``match`` graph (rows' inner names prefixed apart)."""
    from onnx import compose

    rows = compose.add_prefix(rows, "rows/", rename_inputs=False, rename_outputs=False)
    return compose.merge_models(rows, reduce, io_map=[("g1", "g1"), ("g3", "g3")])


def export_onnx(model: MindNet, graph: str, path=None, opset: int = OPSET, rows=None):
    """Export ``graph`` ("forward", "rows" or "match") of the float32 CPU ``model`` to ONNX,
    checked with ``onnx.checker`` (full check, shape inference included). For "match", ``rows``
    may be the already exported rows ModelProto, saving its export. Writes ``path`` if given;
    returns the ModelProto."""
    import onnx

    if graph not in GRAPHS:
        raise ValueError(f"unknown graph {graph!r}; choose one of {GRAPHS}")
    p = next(model.parameters())
    if p.dtype != torch.float32 or p.device.type != "cpu":
        raise ValueError("export a float32 CPU model (precision is chosen at TensorRT build time)")
    if graph == "forward":
        proto = _export_part(model, "forward", opset)
    elif graph == "rows":
        proto = _export_part(LinearisedMind(model), "rows", opset)
    else:
        rows = rows if rows is not None else _export_part(LinearisedMind(model), "rows", opset)
        proto = _join_match(rows, _export_part(ReduceGraph(), "reduce", opset))
    proto.doc_string = json.dumps({"mind_engine_graph": graph, "config": model.config.to_dict(),
                                   "weights": weights_hash(model), "code": code_hash()})
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        onnx.save_model(proto, str(path))
    return proto


# --------------------------------------------------------------------------------------------
# The cache


def cache_dir() -> Path:
    """Where exported graphs (and TensorRT engines) are kept: ``$MIND_ENGINE_CACHE``, else
    ``$XDG_CACHE_HOME/mind_engine``, else ``~/.cache/mind_engine``; never inside the package."""
    env = os.environ.get("MIND_ENGINE_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mind_engine"


def weights_hash(model: MindNet) -> str:
    """sha256 over the configuration and every tensor's name, shape and float32 bytes (16 hex)."""
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


@lru_cache(maxsize=1)
def code_hash() -> str:
    """sha256 of the sources that define the graphs, so an edited linearisation is re-exported."""
    mods = (model_module, linearised, _torch_impl, sys.modules[__name__])
    return hashlib.sha256("".join(inspect.getsource(m) for m in mods).encode()).hexdigest()[:8]


def cached_onnx(model: MindNet, graph: str, opset: int = OPSET) -> Path:
    """The exported ``graph`` for this model: from the cache, or exported now (atomically)."""
    if graph not in GRAPHS:
        raise ValueError(f"unknown graph {graph!r}; choose one of {GRAPHS}")
    torch_v = torch.__version__.split("+")[0]
    name = f"{graph}-{weights_hash(model)}-code{code_hash()}-torch{torch_v}-opset{opset}.onnx"
    path = cache_dir() / "onnx" / name
    if not path.is_file():
        import onnx

        cpu = MindNet(model.config)
        cpu.load_state_dict({k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()})
        rows = onnx.load(str(cached_onnx(model, "rows", opset))) if graph == "match" else None
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        export_onnx(cpu.eval(), graph, tmp, opset=opset, rows=rows)
        os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------------------------
# ONNX Runtime


def _ort():
    try:
        import onnxruntime
    except ImportError as e:
        raise ImportError("backend='onnxruntime' needs onnxruntime (CPU) or onnxruntime-gpu: "
                          "pip install 'mind-engine[onnx]'") from e
    return onnxruntime


def providers_for(device: torch.device) -> list[str]:
    """CUDAExecutionProvider (then CPU) for CUDA images when onnxruntime-gpu offers it, else CPU
    alone (with a warning for CUDA images: they are copied to the host for each run)."""
    available = _ort().get_available_providers()
    if torch.device(device).type == "cuda":
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        warnings.warn(f"the images are on {device} but this onnxruntime has no CUDAExecutionProvider "
                      f"(providers: {available}); running on the CPU. Install onnxruntime-gpu to run "
                      f"on the GPU.", RuntimeWarning, stacklevel=3)
    return ["CPUExecutionProvider"]


@lru_cache(maxsize=8)
def _session(path: str, providers: tuple[str, ...], device_id: int, threads: int):
    ort = _ort()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    plist = [(p, {"device_id": device_id}) if p == "CUDAExecutionProvider" else p for p in providers]
    return ort.InferenceSession(path, sess_options=opts, providers=plist)


_NP = {torch.float32: np.float32, torch.int64: np.int64}


class OrtGraph:
    """One exported graph in an ONNX Runtime session, fed and read through IO binding on torch
    tensors (zero-copy on the CPU, no host round trip on CUDA). Intra-op threads follow
    ``torch.get_num_threads()``, so one setting governs both libraries."""

    def __init__(self, model: MindNet, graph: str, device: torch.device):
        self.graph = graph
        device = torch.device(device)
        providers = tuple(providers_for(device))
        on_gpu = providers[0] == "CUDAExecutionProvider"
        self.device = device if on_gpu else torch.device("cpu")
        self.device_id = (device.index if device.index is not None else torch.cuda.current_device()) if on_gpu else 0
        self.path = cached_onnx(model, graph)
        self.session = _session(str(self.path), providers, self.device_id, torch.get_num_threads())

    def run(self, inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]):
        """Run on ``inputs``, writing into the contiguous ``outputs`` on ``self.device`` (returned)."""
        binding = self.session.io_binding()
        keep = []
        for name, t in list(inputs.items()) + list(outputs.items()):
            out = name in outputs
            t = t if out else t.to(self.device).contiguous()
            if out and (t.device != self.device or not t.is_contiguous()):
                raise ValueError(f"output buffer {name} must be contiguous on {self.device}")
            keep.append(t)
            (binding.bind_output if out else binding.bind_input)(
                name, self.device.type, self.device_id, _NP[t.dtype], list(t.shape), t.data_ptr())
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()  # inputs written before ORT reads
        self.session.run_with_iobinding(binding)
        return outputs


class OnnxRuntimeTier(RowsTier):
    """T1's exported graphs run by ONNX Runtime behind the tier interface (``rows`` and ``match``
    as ``RowsTier``'s); results come back on the images' device. ``memory`` (bytes, default
    ``RUN_MEMORY``) bounds one run's activations: queries go through in runs of that size."""

    name = "onnxruntime"

    def __init__(self, model: MindNet, i1: torch.Tensor, i3: torch.Tensor, memory: int | None = None):
        if i1.shape[0] != 1:
            raise ValueError(f"{self.name} matches one image pair at a time; got a batch of {i1.shape[0]}")
        self.model, self.device = model, i1.device
        self.i1, self.i3 = i1.detach().float(), i3.detach().float()
        self.step = seeds_per_chunk(model, tuple(i1.shape[-2:]), memory or RUN_MEMORY)
        self._graphs: dict[str, OrtGraph] = {}

    def _run(self, graph: str, inputs: dict, shapes: dict) -> dict[str, torch.Tensor]:
        """``graph`` on the pair and ``inputs`` (each (B, ...)), ``self.step`` queries per run."""
        if graph not in self._graphs:
            self._graphs[graph] = OrtGraph(self.model, graph, self.device)
        g, n = self._graphs[graph], len(next(iter(inputs.values())))
        outputs = {k: torch.empty((n,) + s, dtype=d, device=g.device) for k, (s, d) in shapes.items()}
        for s in range(0, n, self.step):
            part = {k: v[s:s + self.step].long() for k, v in inputs.items()}
            g.run({"i1": self.i1, "i3": self.i3, **part}, {k: v[s:s + self.step] for k, v in outputs.items()})
        return {k: v.to(self.device) for k, v in outputs.items()}

    def rows(self, queries: torch.Tensor):
        shape = tuple(self.i1.shape[1:])
        if queries.shape[0] == 0:
            return self.i1.new_zeros((0,) + shape), self.i1.new_zeros((0,) + shape)
        out = self._run("rows", {"queries": queries}, {k: (shape, torch.float32) for k in ("g1", "g3")})
        return out["g1"], out["g3"]

    def match(self, queries: torch.Tensor, boxes: torch.Tensor, hw: tuple[int, int]):
        if tuple(hw) != tuple(self.i1.shape[-2:]) or queries.shape[0] == 0:
            return super().match(queries, boxes, hw)  # padded: crop the rows, reduce in torch
        shapes = {k: ((), torch.int64 if k.startswith("idx") else torch.float32) for k in OUTPUTS["match"]}
        o = self._run("match", {"queries": queries, "boxes": boxes}, shapes)
        return (o["idx1"], o["peak1"], o["score1"]), (o["idx3"], o["peak3"], o["score3"])

