"""Where coarse-to-fine matching spends its time, level by level.

    python bench/c2f_profile.py --threads 1 --precision fp32 bf16   # 384x128, stride 4, radius 32
    python bench/c2f_profile.py --threads 2 --finest-level 1           # MIND stopped one level early

One run of ``Engine.coarse_to_fine`` per precision, timed from inside (wall clock): each level's
matcher (an Engine on that level's warped pair) split into

* ``convolutions``: the transposed network's convolutions (``WindowOps.conv_t`` and ``down``,
  the crops they gather for their inputs included), with their multiply-accumulates;
* ``window_crops``: the other crop operations (slope and mask products, unpooling, clips, hand
  over to the encoder, skip additions);
* ``first_layer_and_match``: the fused first-layer backward and matching reduction;
* ``linearisation``: the level's forward and its state (and its cast to 16 bits);
* ``other``: the rest of the level (Engine set-up, query planning, Python);

and ``pyramid``: everything outside the levels' matchers (downsampling, warps, densify,
composition). The timers wrap the engine's methods in this process only (a bench, not the
library); each category counts its own time, not its callees'. ``bench/latency.py --profile``
adds the same breakdown to its c2f rows.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # after the installed mind_engine: only for bench's own modules

CATEGORIES = {"conv_t": "convolutions", "down": "convolutions", "mul": "window_crops", "unpool_mul": "window_crops",
              "_clip": "window_crops", "to_encoder": "window_crops", "add": "window_crops", "split": "window_crops",
              "input": "first_layer_and_match"}
PARTS = ("convolutions", "window_crops", "first_layer_and_match", "linearisation", "other")


class Timers:
    """Exclusive wall time per (level, category) and convolution MACs per level."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.macs = defaultdict(int)
        self.levels: list[dict] = []
        self.level = None
        self._open: list[float] = []  # time spent in the callees of each open timer

    def timed(self, fn, category: str):
        def run(*args, **kwargs):
            self._open.append(0.0)
            start = time.perf_counter()
            try:
                out = fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - start
                self.seconds[self.level, category] += dt - self._open.pop()
                if self._open:
                    self._open[-1] += dt
            if category == "convolutions":
                self.macs[self.level] += conv_macs(fn.__name__, args, out)
            return out
        return run


def conv_macs(name: str, args, out) -> int:
    """Multiply-accumulates of one transposed-network convolution, from its output window."""
    weight = args[2]
    c_in = weight.shape[0] if name == "conv_t" else weight.shape[1]  # conv_transpose2d weights are (in, out, k, k)
    return out.t.numel() * c_in * weight.shape[2] * weight.shape[3]


@contextlib.contextmanager
def instrumented(timers: Timers):
    """The engine's methods wrapped by ``timers`` for the duration of the block."""
    from mind_engine import api
    from mind_engine.engine import linearisation, windowed
    from mind_engine.engine.windows import WindowOps

    originals = [(WindowOps, name, getattr(WindowOps, name)) for name in CATEGORIES]
    originals += [(linearisation.Linearisation, "__init__", linearisation.Linearisation.__init__),
                  (windowed, "stored_in", windowed.stored_in), (api, "coarse_to_fine", api.coarse_to_fine)]
    for owner, name, fn in originals[:len(CATEGORIES)]:
        setattr(owner, name, timers.timed(fn, CATEGORIES[name]))
    for owner, name, fn in originals[len(CATEGORIES):-1]:
        setattr(owner, name, timers.timed(fn, "linearisation"))
    pyramid = api.coarse_to_fine

    def coarse_to_fine(img1, img3, queries, radius, levels, matcher, **options):
        def level_matcher(level):
            timers.level = level.index
            start = time.perf_counter()
            out = matcher(level)
            timers.levels.append({"level": level.index, "size": f"{level.img1.shape[-1]}x{level.img1.shape[-2]}",
                                  "queries": len(level.queries), "radius": level.radius,
                                  "seconds": time.perf_counter() - start})
            return out
        return pyramid(img1, img3, queries, radius, levels, level_matcher, **options)

    api.coarse_to_fine = coarse_to_fine
    try:
        yield timers
    finally:
        for owner, name, fn in originals:
            setattr(owner, name, fn)


def profile_c2f(engine, stride: int = 4, radius: int | None = 32, levels="auto", queries=None,
                finest_level: int = 0) -> dict:
    """One ``engine.coarse_to_fine`` run (at ``queries``, else the grid of ``stride``),
    instrumented: total, pyramid and per-level seconds, and each level's query count."""
    with instrumented(Timers()) as timers:
        start = time.perf_counter()
        engine.coarse_to_fine(queries, stride=stride, radius=radius, levels=levels, finest_level=finest_level)
        total = time.perf_counter() - start
    rows = []
    for lv in timers.levels:
        parts = {p: timers.seconds[lv["level"], p] for p in PARTS[:-1]}
        parts["other"] = lv["seconds"] - sum(parts.values())
        macs = timers.macs[lv["level"]]
        rows.append({**lv, **{f"{p}_s": v for p, v in parts.items()}, "conv_gmac": macs / 1e9,
                     "conv_gmac_per_s": macs / 1e9 / max(parts["convolutions"], 1e-12)})
    return {"total_s": total, "pyramid_s": total - sum(lv["seconds"] for lv in timers.levels), "levels": rows}


def print_profile(label: str, prof: dict) -> None:
    print(f"{label}: {prof['total_s']:.2f} s, outside the levels (pyramid) {prof['pyramid_s']:.2f} s")
    print(f"  {'level':>5s} {'size':>8s} {'queries':>7s} {'R':>4s} {'s':>6s} " + " ".join(f"{p[:12]:>12s}" for p in PARTS)
          + f" {'GMAC':>6s} {'GMAC/s':>7s}")
    for lv in prof["levels"]:
        print(f"  {lv['level']:5d} {lv['size']:>8s} {lv['queries']:7d} {str(lv['radius']):>4s} {lv['seconds']:6.2f} "
              + " ".join(f"{lv[p + '_s']:12.2f}" for p in PARTS) + f" {lv['conv_gmac']:6.1f} {lv['conv_gmac_per_s']:7.1f}")


def main(argv=None) -> dict:
    from bench.testbed import cpu_name, test_pair
    from bench.report import add_output_args, output_path, write_json
    from mind_engine import Engine
    from mind_engine.weights import load_model

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16", "fp16"])
    p.add_argument("--stride", type=int, default=4)
    p.add_argument("--radius", type=int, default=32)
    p.add_argument("--finest-level", type=int, default=0, choices=[0, 1],
                   help="the finest level MIND runs at (1: one level early, match(finest_level=1))")
    p.add_argument("--threads", type=int, default=None)
    add_output_args(p, "c2f_profile_cpu.json")
    args = p.parse_args(argv)
    out = output_path(p, args, "c2f_profile_cpu.json")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(None)
    i1, i3 = test_pair(128, 384, torch.device("cpu"))
    res = {"device": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__, "size": "384x128",
           "stride": args.stride, "radius": args.radius, "finest_level": args.finest_level,
           "command": " ".join(sys.argv), "profiles": {}}
    for precision in args.precision:
        prof = profile_c2f(Engine(i1[0], i3[0], model=model, precision=precision), args.stride, args.radius,
                           finest_level=args.finest_level)
        print_profile(precision, prof)
        res["profiles"][precision] = prof
    write_json(res, out)
    return res


if __name__ == "__main__":
    main()
