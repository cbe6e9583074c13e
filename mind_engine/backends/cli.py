"""``mind-engine export onnx`` and ``mind-engine export tensorrt``: the network's graphs as files
to take elsewhere (``match(..., backend=...)`` exports and caches what it needs by itself).

    mind-engine export onnx [--out exported/] [--weights W] [--graphs forward rows match] [--opset 20] [--verify]
    mind-engine export tensorrt (--onnx FILE | --weights W) --graph G --out G.engine [--precision fp32] ...

``export onnx`` writes ``forward.onnx`` (the interpolation network), ``rows.onnx`` (the tier-1
linearised backward: images and a batch of (x, y) queries in, Jacobian rows out) and
``match.onnx`` (the same with search boxes in and the reduced matches out), dynamic in batch, H
and W (multiples of 32), each checked with ``onnx.checker`` (``backends.onnx.export``);
``--verify`` runs each in ONNX Runtime against torch (``backends.onnx.verify``). ``export
tensorrt`` builds an engine (``backends.tensorrt.build``) from one of those files or from a
checkpoint, exported first; ``--height``, ``--width`` and ``--batch`` are the optimisation
profile's (min, opt, max). The scripts ``export/onnx_export.py`` and ``export/tensorrt_build.py``
run these commands.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ..checks import check_folder, check_integer, check_writable
from ..cliargs import choice, number, subcommand

ENGINE_SUFFIXES = (".engine", ".plan")


def add_parsers(sub) -> None:
    """``export`` and its two formats, on the ``mind-engine`` parser's subparsers ``sub``."""
    from .onnx.export import GRAPHS, MIN_OPSET, OPSET
    from .tensorrt.build import PRECISIONS, Profile

    e = subcommand(sub, "export", "write the network's graphs as ONNX files or build a TensorRT engine")
    formats = e.add_subparsers(dest="format", required=True, metavar="{onnx,tensorrt}", help="what to write")
    o = subcommand(formats, "onnx",
                   "export the forward, rows and match graphs to ONNX (up to a few minutes, depending on the "
                   "CPU; a line as each graph starts and ends)")
    o.add_argument("--out", default="exported", help="folder for the .onnx files")
    o.add_argument("--weights", default=None, help="checkpoint (.safetensors); default: the bundled model")
    o.add_argument("--graphs", nargs="+", type=choice, choices=GRAPHS, default=list(GRAPHS),
                   help="the graphs to export")
    o.add_argument("--opset", type=number, default=OPSET,
                   help=f"ONNX opset, {MIN_OPSET} or above (the file is read back and its opset checked)")
    o.add_argument("--verify", action="store_true", help="compare each file with torch in ONNX Runtime")

    t = subcommand(formats, "tensorrt", "build a TensorRT engine (needs TensorRT 10 and a CUDA GPU; untested)")
    src = t.add_mutually_exclusive_group()
    src.add_argument("--onnx", default=None, help="an ONNX file from `mind-engine export onnx` (default: export --weights)")
    src.add_argument("--weights", default=None, help="checkpoint to export first (default: the bundled model)")
    t.add_argument("--graph", type=choice, choices=GRAPHS, required=True, help="which graph the engine runs")
    t.add_argument("--out", required=True, help=f"the engine file to write ({', '.join(ENGINE_SUFFIXES)})")
    t.add_argument("--precision", type=choice, choices=PRECISIONS, default="fp32", help="kernels TensorRT may use")
    for name, help in (("height", "image heights, multiples of 32"), ("width", "image widths, multiples of 32"),
                       ("batch", "images (forward) or queries (rows, match) per launch")):
        t.add_argument(f"--{name}", type=number, nargs=3, default=getattr(Profile, name), metavar=("MIN", "OPT", "MAX"),
                       help=f"the optimisation profile's {help}")
    t.add_argument("--workspace-gib", type=number, default=4.0, help="TensorRT's workspace in GiB")
    t.add_argument("--verbose", action="store_true", help="TensorRT's verbose log")


def cmd_export(a) -> int:
    return {"onnx": _onnx, "tensorrt": _tensorrt}[a.format](a)


def _model(weights):
    from ..weights import load_model

    return load_model(weights, device="cpu").float().eval()


def _onnx(a) -> int:
    from .onnx.export import check_opset, export_onnx

    out = check_folder(a.out, "--out")
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ValueError(f"export onnx needs {e.name}: pip install 'mind-engine[onnx]'") from e
    a.opset = check_opset(a.opset, "--opset")
    model = _model(a.weights)
    exported = {}
    for graph in a.graphs:
        path = out / f"{graph}.onnx"
        t = time.perf_counter()
        print(f"{path}: exporting the {graph} graph...", flush=True)
        exported[graph] = export_onnx(model, graph, path, opset=a.opset, rows=exported.get("rows"))
        line = (f"{path}: exported and checked (read back: opset {a.opset}, inputs "
                f"{', '.join(i.name for i in exported[graph].graph.input)}) in {time.perf_counter() - t:.1f} s")
        if a.verify:
            from .onnx.verify import verify

            diffs = verify(model, path, graph)
            line += "; vs torch: " + ", ".join(
                f"{k} {'differing' if k.startswith('idx') else 'max rel'} {v:.2g}" for k, v in diffs.items())
        print(line, flush=True)
    print(f"these graphs take images whose height and width are multiples of {model.config.multiple} "
          f"(other sizes fail in the runtime): pad at the bottom and right by repeating the last row and column "
          f"(mind_engine.images.pad_to_multiple) and crop the outputs; each file's doc string says what it takes")
    return 0


def _tensorrt(a) -> int:
    from .onnx.export import export_onnx
    from .tensorrt.build import Profile, available, build_engine

    profile = Profile(*(tuple(check_integer(v, f"--{name}", 1) for v in getattr(a, name))
                        for name in ("height", "width", "batch")))
    check_writable(a.out, "--out", ENGINE_SUFFIXES)
    if a.onnx is not None and not Path(a.onnx).is_file():
        raise ValueError(f"--onnx {a.onnx}: no such file")
    ok, why = available()
    if not ok:
        raise ValueError(f"cannot build a TensorRT engine here: {why}")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = a.onnx
        if onnx_path is None:
            onnx_path = Path(tmp) / f"{a.graph}.onnx"
            export_onnx(_model(a.weights), a.graph, onnx_path)
        t = time.perf_counter()
        build_engine(onnx_path, a.graph, a.precision, profile, a.workspace_gib, engine_path=a.out, verbose=a.verbose)
    print(f"{a.out}: {a.graph} engine, {a.precision}, profile {profile.key()}, "
          f"built in {time.perf_counter() - t:.0f} s")
    return 0
