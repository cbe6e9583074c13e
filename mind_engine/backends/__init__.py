"""Running the exported tier-1 graph outside PyTorch: ``onnx`` (export, cache, ONNX Runtime) and
``tensorrt`` (engine build, ONNX surgery, runtime; untested: no machine here has TensorRT).
Importing this package registers their tiers with the engine (``engine.tiers.register``), so
``match(..., backend="onnxruntime" | "tensorrt")`` finds them; ``mind_engine.api`` imports it.
The optional libraries (onnx, onnxruntime, tensorrt) are imported only when a tier runs."""
from .onnx import runtime as _onnx_runtime  # noqa: F401
from .tensorrt import runtime as _tensorrt_runtime  # noqa: F401
