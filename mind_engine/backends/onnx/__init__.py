"""ONNX: ``export`` (the graphs), ``cache`` (exported files on disk), ``runtime`` (ONNX Runtime)."""
