"""Running the exported tier-1 graph outside PyTorch: ``onnx`` (export, cache, ONNX Runtime) and
``tensorrt`` (engine build, ONNX surgery, runtime; untested: no machine here has TensorRT).
``match(..., backend="onnxruntime" | "tensorrt")`` selects them (``engine.tiers.make_tier``)."""
