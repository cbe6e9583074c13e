"""ONNX Runtime behind the tier interface: ``match(..., backend="onnxruntime")`` runs the exported
tier-1 graphs (``export``) from the cache (``cache``), on the CPU or, with onnxruntime-gpu, CUDA."""
from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import torch

from ...engine.dense import seeds_per_chunk
from ...engine.matching import DEFAULT_MEMORY, RowsTier
from ...engine.tiers import register
from ...model import MindNet
from .cache import cached_onnx
from .export import OUTPUTS

RUN_MEMORY = DEFAULT_MEMORY  # bytes of activations one run of the rows or match graph may hold




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


@register
class OnnxRuntimeTier(RowsTier):
    """T1's exported graphs run by ONNX Runtime behind the tier interface (``rows`` and ``match``
    as ``RowsTier``'s); results come back on the images' device. ``memory`` (bytes, default
    ``RUN_MEMORY``) bounds one run's activations: queries go through in runs of that size."""

    name = "t1"
    backend = "onnxruntime"
    speed = 1

    def __init__(self, model: MindNet, i1: torch.Tensor, i3: torch.Tensor, memory: int | None = None,
                 precision: str = "fp32"):
        if i1.shape[0] != 1:
            raise ValueError(f"{self.backend} matches one image pair at a time; got a batch of {i1.shape[0]}")
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
