"""Training throughput on this machine: one optimiser step of the documented recipe in fp32, under
bf16 autocast, and under bf16 autocast with channels_last (what ``--amp auto`` picks on a CPU with
bf16 units), per thread count.

    python bench/train_speed.py --threads 1 2 --steps 12     # writes bench/results/train_speed_cpu.json

Each configuration builds the run as ``mind-engine train`` does (``parse_args`` with the recipe's
defaults, ``build_model``, ``TrainingState``, ``build_data``) and times ``train_step`` itself, the
batch drawn included, after two warm-up steps; the figure is the median over ``--steps`` steps.
Nothing else may run on the machine meanwhile: the ratios are only meaningful within one run.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # after the installed mind_engine: only for bench.report

from bench.testbed import cpu_name  # noqa: E402
from bench.report import add_output_args, check_args, output_path, write_json  # noqa: E402
from mind_engine.checks import check_integer, check_threads, check_unique  # noqa: E402
from mind_engine.hardware import cpu_has_bf16  # noqa: E402
from mind_engine.training.build import build_data, build_model  # noqa: E402
from mind_engine.training.cli import parse_args  # noqa: E402
from mind_engine.training.state import TrainingState  # noqa: E402
from mind_engine.training.step import train_step  # noqa: E402

CONFIGS = {  # name -> (bf16 autocast, channels_last)
    "fp32": (False, False),
    "bf16": (True, False),
    "bf16_channels_last": (True, True),
}
WARMUP = 2


def step_seconds(args, sampler, amp: bool, channels_last: bool, steps: int) -> list[float]:
    """Seconds of each of ``steps`` timed training steps of the run ``args`` describes, from the
    same seed, drawing its batches from ``sampler`` (built once: decoding the clips is not timed)."""
    device = torch.device("cpu")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    state = TrainingState(build_model(args), args, device, fmt)
    times = []
    for k in range(steps + WARMUP):
        t = time.perf_counter()
        train_step(state, state.train_net, sampler, args, device, amp, fmt)
        if k >= WARMUP:
            times.append(time.perf_counter() - t)
    return times


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch CPU thread counts (default 1 2)")
    p.add_argument("--steps", type=int, default=12, help="timed steps per configuration (default 12)")
    p.add_argument("--train-args", nargs=argparse.REMAINDER, default=[],
                   help="more `mind-engine train` options, after everything else (default: the recipe)")
    add_output_args(p, "train_speed_cpu.json")
    args = p.parse_args(argv)
    check_args(p, args, {"threads": lambda v, n: check_unique([check_threads(t, n) for t in v], n),
                         "steps": lambda v, n: check_integer(v, n, 1)})
    out = output_path(p, args, "train_speed_cpu.json")
    train_args = parse_args(["--steps", str(args.steps + WARMUP), *args.train_args])
    sampler = build_data(train_args, torch.device("cpu")).sampler
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        base = None
        for name, (amp, cl) in CONFIGS.items():
            times = step_seconds(train_args, sampler, amp, cl, args.steps)
            ms = 1000 * statistics.median(times)
            base = base or ms
            rows.append({"threads": threads, "config": name, "ms_per_step": ms, "speedup_vs_fp32": base / ms,
                         "all_ms": [1000 * t for t in times]})
            print(f"threads {threads}  {name:20s} {ms:7.1f} ms/step  {base / ms:4.2f}x", flush=True)
    doc = {"machine": cpu_name(), "cpu_has_bf16": cpu_has_bf16(),
           "torch": torch.__version__, "recipe": "mind-engine train defaults (batch 16, 64x64, the bundled model)",
           "train_args": args.train_args, "warmup_steps": WARMUP, "results": rows}
    write_json(doc, out)
    return doc


if __name__ == "__main__":
    main()
