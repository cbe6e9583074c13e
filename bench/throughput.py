"""Pairs per second of ``match_many``: in-process vs Ray with 1 and 2 workers, small and default model.

    python bench/throughput.py [--pairs 24] [--size 384x128] [--stride 8] [--radius 16] [--quick]
                               [--out PATH] [--force]

The pairs are synthetic (a smooth random texture and a shifted copy, written as PNG files, so
decoding is part of the work) and the small model has random weights (speed does not depend on
the values); "default" is the bundled trained model. Each configuration matches every pair into
a fresh folder. Reported per configuration: ``wall_s`` (the whole ``match_many`` call, Ray's actor
start-up included), ``pairs_per_s`` (pairs / wall_s) and ``steady_pairs_per_s`` (pairs after the
first, over the time from the first result to the last: start-up excluded). CPU threads: the
in-process worker uses all cores; Ray's workers split them (``cores // workers`` each). Writes
bench/results/throughput_<device>.json (or --out) and refuses to overwrite a results file
without --force. ``--quick``: 4 pairs of 64x64, the small model only (a check that it runs).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import mind_engine as me  # noqa: E402
from bench.testbed import cpu_name  # noqa: E402
from bench.report import add_output_args, output_path, write_json  # noqa: E402
from mind_engine.weights import DEFAULT_WEIGHTS  # noqa: E402

SMALL = {"encoder": (16, 16, 32, 32, 32), "decoder": (32, 32, 32, 16, 16)}


def make_pairs(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[tuple[str, str]]:
    """``n`` PNG pairs of ``size`` (W, H): a smooth random texture and a copy shifted by up to 4 px."""
    import imageio.v3 as iio

    rng = np.random.default_rng(seed)
    w, h = size
    pairs = []
    for i in range(n):
        noise = torch.from_numpy(rng.random((1, 3, h + 24, w + 24)))
        tex = (torch.nn.functional.avg_pool2d(noise, 5, 1)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        dx, dy = rng.integers(0, 5, 2)
        a, b = folder / f"{i}a.png", folder / f"{i}b.png"
        iio.imwrite(a, tex[8:8 + h, 8:8 + w])
        iio.imwrite(b, tex[8 + dy:8 + dy + h, 8 + dx:8 + dx + w])
        pairs.append((str(a), str(b)))
    return pairs


def measure(pairs, out: Path, weights: Path, backend: str, workers: int, threads: int, args) -> dict:
    done: list[float] = []
    t = time.perf_counter()
    man = me.match_many(pairs, out, weights=weights, stride=args.stride, radius=args.radius, backend=backend,
                        device=args.device, levels=1,  # one scale, as bench/results/throughput_cpu.json measured
                        workers=workers if backend == "ray" else None, threads=threads, progress=False,
                        callback=lambda rec: done.append(time.perf_counter()))
    wall = time.perf_counter() - t
    n = man["counts"]["ok"]
    if man["counts"]["failed"]:
        raise RuntimeError(f"{man['counts']['failed']} pairs failed: {[r.get('error') for r in man['pairs']][:3]}")
    steady = (n - 1) / (done[-1] - done[0]) if n > 1 and done[-1] > done[0] else None
    return {"backend": backend, "workers": workers, "threads_per_worker": threads, "pairs": n,
            "wall_s": round(wall, 3), "pairs_per_s": round(n / wall, 3),
            "steady_pairs_per_s": None if steady is None else round(steady, 3)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=24, help="pairs per configuration (default 24)")
    p.add_argument("--size", default="384x128", help="image size WxH (default 384x128)")
    p.add_argument("--stride", type=int, default=8, help="query grid stride (default 8)")
    p.add_argument("--radius", type=int, default=16, help="search radius (default 16)")
    p.add_argument("--models", nargs="*", default=["small", "default"], choices=["small", "default"])
    p.add_argument("--workers", nargs="*", type=int, default=[1, 2], help="Ray worker counts (default 1 2)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (Ray: one worker per GPU; default cpu)")
    p.add_argument("--quick", action="store_true", help="4 pairs of 64x64, small model only: a check that it runs")
    add_output_args(p, "throughput_<device>.json")
    args = p.parse_args(argv)
    if args.quick:
        args.pairs, args.size, args.models, args.stride, args.radius = 4, "64x64", ["small"], 16, 8
    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    out = output_path(p, args, f"throughput_{kind}.json")
    w, h = (int(v) for v in args.size.lower().split("x"))
    cores = os.cpu_count() or 1
    try:
        import ray
    except ImportError:
        ray = None
        print("Ray is not installed (pip install 'mind-engine[ray]'): in-process only", file=sys.stderr)

    results = []
    with tempfile.TemporaryDirectory(prefix="mind_throughput_") as tmp:
        tmp = Path(tmp)
        pairs = make_pairs(tmp, args.pairs, (w, h))
        torch.manual_seed(0)
        me.save_model(me.MindNet(**SMALL), tmp / "small.safetensors")
        models = {"small": tmp / "small.safetensors", "default": DEFAULT_WEIGHTS}
        if ray is not None:
            ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
        try:
            for name in args.models:
                configs = [("local", 1, cores)] + ([("ray", k, max(1, cores // k)) for k in args.workers]
                                                   if ray is not None else [])
                for backend, k, threads in configs:
                    r = measure(pairs, tmp / f"out_{name}_{backend}_{k}", models[name], backend, k, threads, args)
                    results.append({"model": name, **r})
                    print(f"{name:8s} {backend:6s} workers {k}  threads {threads}:  {r['pairs_per_s']:.2f} pairs/s "
                          f"(steady {r['steady_pairs_per_s']}), {r['wall_s']:.1f} s")
        finally:
            if ray is not None:
                ray.shutdown()
    doc = {"what": "match_many throughput, pairs per second", "quick": args.quick,
           "machine": {"cpu": cpu_name(), "cores": cores, "platform": platform.platform()},
           "device": args.device, "torch": torch.__version__, "ray": None if ray is None else ray.__version__,
           "size": f"{w}x{h}", "stride": args.stride, "radius": args.radius, "pairs": args.pairs,
           "models": {"small": {"widths": SMALL, "weights": "random"}, "default": {"weights": str(DEFAULT_WEIGHTS.name)}},
           "results": results}
    write_json(doc, out)
    return doc


if __name__ == "__main__":
    main()
