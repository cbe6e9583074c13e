"""TensorRT engines built from the exported ONNX graphs, and ``backend="tensorrt"``.

UNTESTED: no machine this project runs on has TensorRT (and CI has no GPU). The code is written
against the TensorRT 10 Python API (``build_serialized_network``, named I/O tensors,
``set_input_shape`` / ``set_tensor_address`` / ``execute_async_v3``, INT64 I/O tensors, the
weakly typed ``BuilderFlag.FP16`` / ``BF16``, which TensorRT 11 removed: there only fp32
engines build); ``tests/test_tensorrt.py`` runs it wherever TensorRT and a GPU exist and skips,
saying why, everywhere else.

The parser takes the ONNX graphs of ``onnx_backend`` after ``without_pool_indices``: TensorRT's
ONNX parser rejects MaxPool's Indices output, which the ``rows`` graph uses for the pool masks.
Engines are cached beside the ONNX files, named after the ONNX file (graph, weights, code,
torch, opset) plus precision, optimisation profile, TensorRT version and GPU name; an engine
only runs on the GPU model and TensorRT version that built it.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from .matching import RowsTier
from .model import MULTIPLE, MindNet
from .onnx_backend import INPUTS, OUTPUTS, RUN_MEMORY, cache_dir, cached_onnx
from .tier1 import seeds_per_chunk

PRECISIONS = ("fp32", "fp16", "bf16")


def _trt():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise ImportError("backend='tensorrt' needs NVIDIA TensorRT >= 10 and a CUDA GPU: "
                          "pip install 'mind-engine[tensorrt]' (TensorRT is not installed here)") from e
    if int(trt.__version__.split(".")[0]) < 10:
        raise ImportError(f"backend='tensorrt' needs TensorRT >= 10, found {trt.__version__}")
    return trt


def available() -> tuple[bool, str]:
    """(True, "") when TensorRT >= 10 and a CUDA GPU are present, else (False, the reason)."""
    try:
        _trt()
    except ImportError as e:
        return False, str(e)
    if not torch.cuda.is_available():
        return False, "TensorRT is installed but torch sees no CUDA GPU"
    return True, ""


@dataclass(frozen=True)
class Profile:
    """One optimisation profile: (min, opt, max) of image height, width and the batch dimension
    (images for the ``forward`` graph, queries for ``rows`` and ``match``). H and W must be
    multiples of 32."""

    height: tuple[int, int, int] = (128, 128, 512)
    width: tuple[int, int, int] = (384, 384, 1024)
    batch: tuple[int, int, int] = (1, 512, 2048)

    def __post_init__(self):
        for name in ("height", "width", "batch"):
            lo, opt, hi = getattr(self, name)
            if not 1 <= lo <= opt <= hi:
                raise ValueError(f"profile {name} must satisfy 1 <= min <= opt <= max, got {(lo, opt, hi)}")
        for v in self.height + self.width:
            if v % MULTIPLE:
                raise ValueError(f"profile heights and widths must be multiples of {MULTIPLE}, got {v}")

    def shapes(self, graph: str) -> dict[str, tuple[tuple[int, ...], ...]]:
        """Input name -> (min, opt, max) shapes for ``graph``."""
        hs, ws, bs = self.height, self.width, self.batch
        img = lambda n: tuple((n[k] if isinstance(n, tuple) else n, 3, hs[k], ws[k]) for k in range(3))
        if graph == "forward":
            return {"i1": img(bs), "i3": img(bs)}
        out = {"i1": img(1), "i3": img(1), "queries": tuple((b, 2) for b in bs)}
        if graph == "match":
            out["boxes"] = tuple((b, 4) for b in bs)
        return out

    def key(self) -> str:
        return "h{}-{}-{}_w{}-{}-{}_b{}-{}-{}".format(*self.height, *self.width, *self.batch)


def without_pool_indices(model_proto):
    """Rewrite every ``MaxPool`` with an ``Indices`` output (which TensorRT's ONNX parser does not
    support) into ops it does: the pooled values by a plain ``MaxPool``, the indices by
    SpaceToDepth -> ArgMax (first maximum, the scan order of MaxPool, torch and ORT) -> the flat
    NCHW index of the window's top-left corner (a Range, strided by Slice) plus the offset in the
    window. Only non-overlapping, unpadded square pools (kernel = stride, the network's 2x2 and the
    exporter's 1x1 helper) occur in the graphs and only those are accepted. Returns a new
    ModelProto; ``tests/test_export_onnx.py`` checks, in ONNX Runtime, that it computes exactly
    what the original computes, ties included."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.ModelProto()
    model.CopyFrom(model_proto)
    graph = model.graph
    nodes, count = [], 0

    def const(name, values):
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(
            name + "_v", TensorProto.INT64, [len(values)] if isinstance(values, list) else [], values
            if isinstance(values, list) else [values]))

    for node in graph.node:
        if node.op_type != "MaxPool" or len(node.output) < 2 or not node.output[1]:
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        k, st = list(attrs.get("kernel_shape", [])), list(attrs.get("strides", [1, 1]))
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if (len(k) != 2 or k[0] != k[1] or k != st or any(pads) or attrs.get("ceil_mode", 0)
                or attrs.get("storage_order", 0) or any(d != 1 for d in attrs.get("dilations", [1, 1]))
                or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")):
            raise ValueError(f"cannot rewrite MaxPool {node.name!r} with attributes {attrs}")
        b = int(k[0])
        x, (y, ind) = node.input[0], node.output[:2]
        p = f"_mpi{count}_"
        count += 1
        plain = helper.make_node("MaxPool", [x], [y], name=p + "maxpool", kernel_shape=k, strides=st)
        if not y:
            plain = None
        new = [n for n in [plain] if n is not None]
        new += [
            helper.make_node("Shape", [x], [p + "shape"]),
            helper.make_node("ReduceProd", [p + "shape"], [p + "numel"], keepdims=0),
            const(p + "zero", 0), const(p + "one", 1),
            helper.make_node("Range", [p + "zero", p + "numel", p + "one"], [p + "iota"]),
            helper.make_node("Reshape", [p + "iota", p + "shape"], [p + "flat"]),  # flat NCHW index of X
            const(p + "starts", [0, 0]), const(p + "ends", [2 ** 62, 2 ** 62]),
            const(p + "axes", [2, 3]), const(p + "steps", [b, b]),
            helper.make_node("Slice", [p + "flat", p + "starts", p + "ends", p + "axes", p + "steps"],
                             [p + "corner"]),  # index of each window's top-left pixel
        ]
        if b == 1:
            new.append(helper.make_node("Identity", [p + "corner"], [ind]))
        else:
            new += [
                helper.make_node("SpaceToDepth", [x], [p + "s2d"], blocksize=b),  # channel (by*b+bx)*C+c
                const(p + "rshape", [0, b * b, -1, 0]),
                helper.make_node("Reshape", [p + "s2d", p + "rshape"], [p + "blocks"]),
                helper.make_node("ArgMax", [p + "blocks"], [p + "k"], axis=1, keepdims=0, select_last_index=0),
                helper.make_node("Shape", [p + "corner"], [p + "oshape"]),
                helper.make_node("Reshape", [p + "k", p + "oshape"], [p + "k4"]),
                const(p + "b", b), const(p + "three", [3]),
                helper.make_node("Div", [p + "k4", p + "b"], [p + "by"]),
                helper.make_node("Mul", [p + "by", p + "b"], [p + "byb"]),
                helper.make_node("Sub", [p + "k4", p + "byb"], [p + "bx"]),
                helper.make_node("Gather", [p + "shape", p + "three"], [p + "w"], axis=0),
                helper.make_node("Mul", [p + "by", p + "w"], [p + "dy"]),
                helper.make_node("Add", [p + "corner", p + "dy"], [p + "c1"]),
                helper.make_node("Add", [p + "c1", p + "bx"], [ind]),
            ]
        nodes += new
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def build_engine(onnx_path, graph: str, precision: str = "fp32", profile: Profile | None = None,
                 workspace_gib: float = 4.0, engine_path=None, verbose: bool = False) -> bytes:
    """Parse ``onnx_path`` and build a serialized TensorRT engine for ``graph``.

    precision "fp16" / "bf16" lets TensorRT pick reduced-precision kernels where it finds them
    faster (weakly typed network: accumulation and the layers it keeps in fp32 are its choice);
    report argmax agreement against fp32 before trusting them (DESIGN.md section 4, T4).
    """
    trt = _trt()
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    profile = profile or Profile()
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    import onnx

    proto = without_pool_indices(onnx.load(str(onnx_path)))
    if not parser.parse(proto.SerializeToString()):
        errors = "\n  ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}:\n  {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # fp32 means fp32: rows are compared with tier 0
    if precision != "fp32":
        flag = getattr(trt.BuilderFlag, precision.upper(), None)
        if flag is None:
            raise RuntimeError(f"TensorRT {trt.__version__} has no weakly typed {precision} builder flag "
                               f"(removed in TensorRT 11); build {precision} engines with TensorRT 10")
        config.set_flag(flag)
    opt_profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile.shapes(graph).items():
        opt_profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(opt_profile)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} "
                           f"(graph {graph}, {precision}, profile {profile}); rerun with verbose=True")
    data = bytes(blob)
    if engine_path is not None:
        Path(engine_path).parent.mkdir(parents=True, exist_ok=True)
        Path(engine_path).write_bytes(data)
    return data


def cached_engine(model: MindNet, graph: str, precision: str = "fp32",
                  profile: Profile | None = None) -> Path:
    """The engine for (model, graph, precision, profile) on this GPU and TensorRT, built if absent."""
    trt = _trt()
    profile = profile or Profile()
    onnx_path = cached_onnx(model, graph)
    gpu = hashlib.sha1(torch.cuda.get_device_name().encode()).hexdigest()[:8]
    name = f"{onnx_path.stem}-{precision}-{profile.key()}-trt{trt.__version__}-gpu{gpu}.engine"
    path = cache_dir() / "tensorrt" / name
    if not path.is_file():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        build_engine(onnx_path, graph, precision, profile, engine_path=tmp)
        os.replace(tmp, path)
    return path


@lru_cache(maxsize=8)
def _load(path: str):
    trt = _trt()
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
    if engine is None:
        raise RuntimeError(f"TensorRT could not load {path} (built by another TensorRT version or GPU?)")
    return runtime, engine


class TrtGraph:
    """One engine with its execution context; runs on torch CUDA tensors, on torch's current stream."""

    def __init__(self, model: MindNet, graph: str, precision: str = "fp32", profile: Profile | None = None):
        ok, why = available()
        if not ok:
            raise RuntimeError(why)
        self.trt = _trt()
        self.graph = graph
        self.runtime, self.engine = _load(str(cached_engine(model, graph, precision, profile)))
        self.context = self.engine.create_execution_context()
        t = self.trt
        self._dtypes = {t.DataType.FLOAT: torch.float32, t.DataType.HALF: torch.float16,
                        t.DataType.BF16: torch.bfloat16, t.DataType.INT32: torch.int32,
                        t.DataType.INT64: torch.int64, t.DataType.BOOL: torch.bool}

    def run(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        keep = {}
        for name in INPUTS[self.graph]:
            want = self._dtypes[self.engine.get_tensor_dtype(name)]
            t = inputs[name].to(device="cuda", dtype=want).contiguous()
            keep[name] = t
            if not self.context.set_input_shape(name, tuple(t.shape)):
                raise ValueError(f"input {name} of shape {tuple(t.shape)} lies outside the engine's "
                                 f"optimisation profile; rebuild with a wider Profile")
            self.context.set_tensor_address(name, t.data_ptr())
        outputs = {}
        for name in OUTPUTS[self.graph]:
            shape = tuple(self.context.get_tensor_shape(name))
            out = torch.empty(shape, dtype=self._dtypes[self.engine.get_tensor_dtype(name)], device="cuda")
            outputs[name] = out
            self.context.set_tensor_address(name, out.data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"TensorRT failed to run the {self.graph} engine")
        stream.synchronize()  # ``keep`` holds the cast inputs alive until here
        return outputs


class TensorRTTier(RowsTier):
    """T1's exported graphs as TensorRT engines behind the tier interface (CUDA images only).
    The default profile fixes H and W to the images' and the batch to ``seeds_per_chunk(memory)``
    queries: one engine build per image size and model, cached."""

    name = "tensorrt"

    def __init__(self, model: MindNet, i1: torch.Tensor, i3: torch.Tensor, memory: int | None = None,
                 precision: str = "fp32", profile: Profile | None = None):
        if i1.device.type != "cuda":
            raise RuntimeError("backend='tensorrt' runs on CUDA images; pass device='cuda'")
        h, w = i1.shape[-2:]
        m = seeds_per_chunk(model, (h, w), memory or RUN_MEMORY)
        self.profile = profile or Profile(height=(h, h, h), width=(w, w, w), batch=(1, m, m))
        self.model, self.precision = model, precision
        self.i1, self.i3 = i1.detach().float().contiguous(), i3.detach().float().contiguous()
        self._graphs: dict[str, TrtGraph] = {}

    def _graph(self, graph: str) -> TrtGraph:
        if graph not in self._graphs:
            self._graphs[graph] = TrtGraph(self.model, graph, self.precision, self.profile)
        return self._graphs[graph]

    def _pieces(self, n: int):
        step = self.profile.batch[2]  # the engine takes at most this many queries per launch
        return [slice(s, s + step) for s in range(0, n, step)]

    def rows(self, queries: torch.Tensor):
        if queries.shape[0] == 0:
            z = self.i1.new_zeros((0,) + tuple(self.i1.shape[1:]))
            return z, z
        outs = [self._graph("rows").run({"i1": self.i1, "i3": self.i3, "queries": queries[s].long()})
                for s in self._pieces(queries.shape[0])]
        return (torch.cat([o["g1"] for o in outs]).float(), torch.cat([o["g3"] for o in outs]).float())

    def match(self, queries: torch.Tensor, boxes: torch.Tensor, hw: tuple[int, int]):
        if tuple(hw) != tuple(self.i1.shape[-2:]) or queries.shape[0] == 0:
            return super().match(queries, boxes, hw)
        outs = [self._graph("match").run({"i1": self.i1, "i3": self.i3, "queries": queries[s].long(),
                                          "boxes": boxes[s].long()})
                for s in self._pieces(queries.shape[0])]
        cat = {k: torch.cat([o[k] for o in outs]) for k in OUTPUTS["match"]}
        return ((cat["idx1"].long(), cat["peak1"].float(), cat["score1"].float()),
                (cat["idx3"].long(), cat["peak3"].float(), cat["score3"].float()))

