"""Export MindNet's graphs to ONNX files and check them against torch with ONNX Runtime: the
script form of ``mind-engine export onnx`` (``mind_engine/backends/cli.py`` says what it writes).

    python export/onnx_export.py [--out exported/] [--weights my.safetensors] [--graphs forward rows match]
                                 [--verify] [--opset 20]
"""
from __future__ import annotations

import sys

from mind_engine.cli import main as cli_main


def main(argv=None) -> int:
    return cli_main(["export", "onnx", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
