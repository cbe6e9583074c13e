"""Build TensorRT engines from MindNet's exported ONNX graphs: the script form of
``mind-engine export tensorrt`` (``mind_engine/backends/cli.py`` says what it builds).

UNTESTED: TensorRT is not installed on any machine this project runs on. Written against the
TensorRT 10 Python API; needs ``pip install 'mind-engine[tensorrt]'`` and a CUDA GPU.

    python export/tensorrt_build.py --onnx exported/rows.onnx --graph rows --out rows_fp16.engine \
        --precision fp16 --height 128 128 512 --width 384 384 1024 --batch 1 512 2048

    python export/tensorrt_build.py --weights my.safetensors --graph match --precision bf16 --out m.engine

fp16 / bf16 let TensorRT use reduced-precision kernels: check argmax agreement against fp32
before relying on them. ``match(..., backend="tensorrt")`` builds (and caches) the engines it
needs by itself.
"""
from __future__ import annotations

import sys

from mind_engine.cli import main as cli_main


def main(argv=None) -> int:
    return cli_main(["export", "tensorrt", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
