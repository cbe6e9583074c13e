"""``backend="tensorrt"``: the engines of ``build`` run on torch CUDA tensors behind the tier
interface. UNTESTED (see ``build``)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from ...engine.dense import seeds_per_chunk
from ...engine.matching import RowsTier
from ...engine.tiers import register
from ...model import MindNet
from ..onnx.export import INPUTS, OUTPUTS
from ..onnx.runtime import RUN_MEMORY
from .build import Profile, _trt, available, cached_engine


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


@register
class TensorRTTier(RowsTier):
    """T1's exported graphs as TensorRT engines behind the tier interface (CUDA images only).
    The default profile fixes H and W to the images' and the batch to ``seeds_per_chunk(memory)``
    queries: one engine build per image size and model, cached."""

    name = "t1"
    backend = "tensorrt"
    speed = 1

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
