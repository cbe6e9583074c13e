"""Build TensorRT engines from MindNet's exported ONNX graphs.

UNTESTED: TensorRT is not installed on any machine this project runs on. Written against the
TensorRT 10 Python API; needs ``pip install 'mind-engine[tensorrt]'`` and a CUDA GPU.

    python export/tensorrt_build.py --onnx exported/rows.onnx --graph rows --out rows_fp16.engine \
        --precision fp16 --height 128 128 512 --width 384 384 1024 --batch 1 512 2048

    python export/tensorrt_build.py --weights my.safetensors --graph match --precision bf16 --out m.engine

Either give an ONNX file written by ``export/onnx_export.py`` (``--onnx``, with ``--graph`` naming
which graph it holds) or a checkpoint (``--weights``; default: the bundled model), which is
exported first. ``--height``, ``--width`` and ``--batch`` are the optimisation profile's
(min, opt, max); heights and widths must be multiples of 32; the batch is images for the
``forward`` graph and queries per launch for ``rows`` and ``match``. fp16 / bf16 let TensorRT use
reduced-precision kernels: check argmax agreement against fp32 before relying on them.
``match(..., backend="tensorrt")`` builds (and caches) the engines it needs by itself.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from mind_engine.backends.onnx.export import GRAPHS, export_onnx
from mind_engine.backends.tensorrt.build import PRECISIONS, Profile, available, build_engine


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--onnx", type=Path, help="an ONNX file from export/onnx_export.py")
    src.add_argument("--weights", help="checkpoint to export first (default: the bundled model)")
    ap.add_argument("--graph", choices=GRAPHS, required=True, help="which graph the engine runs")
    ap.add_argument("--out", type=Path, required=True, help="the .engine file to write")
    ap.add_argument("--precision", choices=PRECISIONS, default="fp32")
    ap.add_argument("--height", type=int, nargs=3, default=Profile.height, metavar=("MIN", "OPT", "MAX"))
    ap.add_argument("--width", type=int, nargs=3, default=Profile.width, metavar=("MIN", "OPT", "MAX"))
    ap.add_argument("--batch", type=int, nargs=3, default=Profile.batch, metavar=("MIN", "OPT", "MAX"))
    ap.add_argument("--workspace-gib", type=float, default=4.0)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    ok, why = available()
    if not ok:
        print(f"cannot build a TensorRT engine here: {why}", file=sys.stderr)
        return 2
    profile = Profile(tuple(args.height), tuple(args.width), tuple(args.batch))
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = args.onnx
        if onnx_path is None:
            from mind_engine import load_model

            model = load_model(args.weights, device="cpu").float().eval()
            onnx_path = Path(tmp) / f"{args.graph}.onnx"
            export_onnx(model, args.graph, onnx_path)
        t = time.perf_counter()
        build_engine(onnx_path, args.graph, args.precision, profile, args.workspace_gib,
                     engine_path=args.out, verbose=args.verbose)
    print(f"{args.out}: {args.graph} engine, {args.precision}, profile {profile.key()}, "
          f"built in {time.perf_counter() - t:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
