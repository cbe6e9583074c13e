"""TensorRT: ``build`` (engines from the ONNX graphs), ``onnx_surgery`` (what its parser needs),
``runtime`` (``backend="tensorrt"``). Untested: no machine this project runs on has TensorRT."""
