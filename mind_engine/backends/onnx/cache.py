"""The cache of exported graphs: ONNX files (and, beside them, TensorRT engines) named by graph,
weights hash, a hash of the code that defines the graphs, torch version and opset, so that one
file serves every image size and an edited linearisation is re-exported."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ...checks import check_choice
from ...model import MindNet
from .export import GRAPHS, OPSET, code_hash, export_onnx, weights_hash


def cache_dir() -> Path:
    """Where exported graphs (and TensorRT engines) are kept: ``$MIND_ENGINE_CACHE``, else
    ``$XDG_CACHE_HOME/mind_engine``, else ``~/.cache/mind_engine``; never inside the package."""
    env = os.environ.get("MIND_ENGINE_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mind_engine"


def cached_onnx(model: MindNet, graph: str, opset: int | None = None) -> Path:
    """The exported ``graph`` for this model: from the cache, or exported now (atomically)."""
    opset = OPSET if opset is None else opset
    graph = check_choice(graph, "graph", GRAPHS)
    torch_v = torch.__version__.split("+")[0]
    name = f"{graph}-{weights_hash(model)}-code{code_hash()}-torch{torch_v}-opset{opset}.onnx"
    path = cache_dir() / "onnx" / name
    if not path.is_file():
        import onnx

        cpu = MindNet(model.config)
        cpu.load_state_dict({k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()})
        rows = onnx.load(str(cached_onnx(model, "rows", opset))) if graph == "match" else None
        export_onnx(cpu.eval(), graph, path, opset=opset, rows=rows)  # written atomically (safe_write)
    return path
