"""Export MindNet's graphs to ONNX files and check them against torch with ONNX Runtime.

    python export/onnx_export.py [--out exported/] [--weights my.safetensors] [--graphs forward rows match]
                                 [--verify] [--opset 20]

Writes ``forward.onnx`` (the interpolation network), ``rows.onnx`` (the T1 linearised backward:
images and a batch of (x, y) queries in, Jacobian rows out) and ``match.onnx`` (the same with
search boxes in and the reduced matches out); dynamic batch, H and W (multiples of 32), each
checked with ``onnx.checker`` (full check). Inputs and outputs are documented in
``mind_engine/backends/onnx/export.py``. ``--verify`` runs each file in ONNX Runtime (CPU) on a random
64x96 pair and prints its largest difference to torch: forward against MindNet, rows against
tier 0 (one autograd.grad per query), match against tier 0's rows put through the reference
reduction. The package exports the same graphs on the fly (and caches them) for
``OnnxRuntimeTier``; this script is for taking them elsewhere.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from mind_engine import MindNet, load_model
from mind_engine.backends.onnx.export import GRAPHS, OPSET, OUTPUTS, export_onnx


def verify(model: MindNet, path: Path, graph: str, seed: int = 0) -> dict[str, float]:
    """Per output of ``graph`` in ONNX Runtime (CPU): the largest |ORT - torch| over the torch
    output's largest magnitude, on a random 64x96 pair; for ``idx`` outputs the fraction of
    peaks that differ. Rows of a trained network are piecewise constant in its activations, so
    a PReLU sign or pooling argmax that float32 rounding flips can move them by ~1e-2."""
    import onnxruntime as ort

    from mind_engine.engine.oracle import Tier0
    from mind_engine.ops._torch_impl import match_reduce

    g = torch.Generator().manual_seed(seed)
    i1, i3 = torch.rand(2, 1, 3, 64, 96, generator=g)
    q = torch.stack([torch.randint(0, 96, (5,), generator=g), torch.randint(0, 64, (5,), generator=g)], 1)
    boxes = torch.tensor([0, 0, 96, 64]).repeat(5, 1)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {"i1": i1.numpy(), "i3": i3.numpy(), "queries": q.numpy(), "boxes": boxes.numpy()}
    out = sess.run(None, {k.name: feed[k.name] for k in sess.get_inputs()})
    if graph == "forward":
        with torch.no_grad():
            ref = [model(i1, i3)]
    else:
        g1, g3 = Tier0(model, i1, i3).rows(q)
        ref = [g1, g3] if graph == "rows" else [*match_reduce(g1, boxes), *match_reduce(g3, boxes)]
    report = {}
    for name, o, r in zip(OUTPUTS[graph], out, ref):
        o, r = torch.as_tensor(o).double(), r.double()
        report[name] = float((o != r).double().mean()) if name.startswith("idx") else \
            float((o - r).abs().max() / r.abs().max().clamp(min=1e-30))
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("exported"), help="folder for the .onnx files (default exported/)")
    ap.add_argument("--weights", help="checkpoint (.safetensors); default: the bundled model")
    ap.add_argument("--graphs", nargs="+", choices=GRAPHS, default=list(GRAPHS))
    ap.add_argument("--opset", type=int, default=OPSET)
    ap.add_argument("--verify", action="store_true", help="compare each file with torch in ONNX Runtime")
    args = ap.parse_args(argv)
    model = load_model(args.weights, device="cpu").float().eval()
    exported = {}
    for graph in args.graphs:
        path = args.out / f"{graph}.onnx"
        t = time.perf_counter()
        exported[graph] = export_onnx(model, graph, path, opset=args.opset, rows=exported.get("rows"))
        line = f"{path}: exported and checked in {time.perf_counter() - t:.1f} s"
        if args.verify:
            diffs = verify(model, path, graph)
            line += "; vs torch: " + ", ".join(
                f"{k} {'differing' if k.startswith('idx') else 'max rel'} {v:.2g}" for k, v in diffs.items())
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
