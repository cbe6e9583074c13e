"""How close an exported graph is to torch: each ONNX file run in ONNX Runtime (CPU) on a random
pair, against MindNet (``forward``), tier 0's rows (``rows``) and tier 0's rows through the
reference reduction (``match``). ``mind-engine export onnx --verify`` prints it."""
from __future__ import annotations

from pathlib import Path

import torch

from ...engine.oracle import Tier0
from ...model import MindNet
from ...ops._torch_impl import match_reduce
from .export import OUTPUTS


def verify(model: MindNet, path: Path, graph: str, seed: int = 0) -> dict[str, float]:
    """Per output of ``graph`` in ONNX Runtime (CPU): the largest |ORT - torch| over the torch
    output's largest magnitude, on a random 64x96 pair; for ``idx`` outputs the fraction of
    peaks that differ. Rows of a trained network are piecewise constant in its activations, so
    a PReLU sign or pooling argmax that float32 rounding flips can move them by ~1e-2."""
    import onnxruntime as ort

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
