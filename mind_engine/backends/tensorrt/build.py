"""TensorRT engines built from the exported ONNX graphs (``backends.onnx``), cached per GPU.

UNTESTED: no machine this project runs on has TensorRT (and CI has no GPU). The code is written
against the TensorRT 10 Python API (``build_serialized_network``, named I/O tensors,
``set_input_shape`` / ``set_tensor_address`` / ``execute_async_v3``, INT64 I/O tensors, the
weakly typed ``BuilderFlag.FP16`` / ``BF16``, which TensorRT 11 removed: there only fp32
engines build); ``tests/test_tensorrt.py`` runs it wherever TensorRT and a GPU exist and skips,
saying why, everywhere else.

The parser takes the ONNX graphs of ``backends.onnx`` after ``onnx_surgery.without_pool_indices``: TensorRT's
ONNX parser rejects MaxPool's Indices output, which the ``rows`` graph uses for the pool masks.
Engines are cached beside the ONNX files, named after the ONNX file (graph, weights, code,
torch, opset) plus precision, optimisation profile, TensorRT version and GPU name; an engine
only runs on the GPU model and TensorRT version that built it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from ...checks import check_choice
from ...model import MULTIPLE, MindNet
from ...safe_write import write_bytes
from ..onnx.cache import cache_dir, cached_onnx
from .onnx_surgery import without_pool_indices

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


def build_engine(onnx_path, graph: str, precision: str = "fp32", profile: Profile | None = None,
                 workspace_gib: float = 4.0, engine_path=None, verbose: bool = False) -> bytes:
    """Parse ``onnx_path`` and build a serialized TensorRT engine for ``graph``.

    precision "fp16" / "bf16" lets TensorRT pick reduced-precision kernels where it finds them
    faster (weakly typed network: accumulation and the layers it keeps in fp32 are its choice);
    report argmax agreement against fp32 before trusting them, never assume it.
    """
    trt = _trt()
    precision = check_choice(precision, "precision", PRECISIONS)
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
        write_bytes(engine_path, data)
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
        build_engine(onnx_path, graph, precision, profile, engine_path=path)  # written atomically (safe_write)
    return path
