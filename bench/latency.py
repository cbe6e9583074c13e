"""Speed of the engine's tiers against the paper's matcher and torch's own batched VJP.

    python bench/latency.py                       # CPU: sampled queries, extrapolated (labelled)
    python bench/latency.py --models default paper   # the shipped model and paper widths, one JSON
    python bench/latency.py --device cuda --sample 0   # GPU: every query of every job
    python bench/latency.py --models default --only queries   # time against queries, the default call

For each job (semi-dense: stride 4, 3072 queries on 384x128; dense: stride 1) and each search
radius (None, 32) it times, in one run on one device: tier 0 (one autograd backward per query;
always on a sample, extrapolated), torch.autograd.grad(..., is_grads_batched=True), and each
engine tier, with tier 3's T4 variants (t3-bf16, t3-fp16: 16-bit storage, not exact; their
exactness columns say how far). Times are end to end: the forward (or linearisation) once, plus the matching of
every query. With --sample N only N queries are matched and the per-query time is extrapolated
to the job; such rows say so. Method ``c2f`` is coarse-to-fine MIND (``Engine.match(levels="auto")``,
``mind_engine.engine.pyramid``) on the semi-dense job (the dense one too with --sample 0), every
query always (its coarse levels match whole grids), the median of --repeats runs (each run listed),
with its ratio to single-level t3 at R=32 and R=None of the same run; ``c2f-bf16`` is the same in
``precision="bf16"``, with its agreement with ``c2f`` of the same run. Method ``queries`` is
``match()`` with its defaults at 1, 10, 100, 1000 random queries and dense (``bench/query_counts.py``). c2f has no exactness
columns: it is not tier 0 on the pair (in fp32 each level is exact against tier 0 on the warped
pair it sees, which tests/test_pyramid.py checks). --profile adds each c2f row's per-level
breakdown (``bench/c2f_profile.py``, a second, instrumented run). Exactness: each method's matches on a common set of queries
against tier 0's (same match point, largest relative difference of peak and score).

Prints a table and writes JSON (--out, default bench/results/latency_<device>.json; an existing
file, such as the committed results, only with --force). A
benchmark reports; the tests (tests/test_tiers.py) are what assert exactness.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from mind_engine import Engine
from mind_engine.engine.matching import grid_queries, search_boxes
from mind_engine.engine.oracle import Tier0
from mind_engine.engine.tiers import TIERS, make_tier
from mind_engine.model import MindConfig, MindNet
from mind_engine.weights import load_model

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # after the installed mind_engine: only for bench's own modules
from bench.report import add_output_args, output_path, publish  # noqa: E402
from bench.query_counts import print_query_counts, time_query_counts  # noqa: E402
from bench.testbed import cpu_name, match_agreement, test_pair  # noqa: E402

JOBS = {"semi-dense": 4, "dense": 1}
RADII = (None, 32)
EXACT_QUERIES = 6  # queries every method is compared to tier 0 on
ISA_LIMITS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")  # environment that caps the CPU kernels; recorded


class Clock:
    """Wall time on the CPU; CUDA events (after a synchronise) on a GPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn):
        if self.cuda:
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn()
            end.record()
            torch.cuda.synchronize()
            return out, start.elapsed_time(end) / 1e3
        t = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t


class PeakMemory:
    """Peak memory over a block: CUDA's allocator peak, or on Linux the process's peak resident
    set (VmHWM, reset through /proc/self/clear_refs) above what it held before."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    @staticmethod
    def _status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
        return 0

    def __enter__(self):
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass
            self.base = self._status("VmRSS:")
        return self

    def __exit__(self, *exc):
        peak = torch.cuda.max_memory_allocated() if self.cuda else self._status("VmHWM:")
        self.bytes = max(0, peak - self.base)


def batched_vjp_rows(out, i1, i3, queries, chunk: int):
    """torch's own batched reverse mode: one autograd.grad over a batch of one-hot seeds."""
    h, w = out.shape[-2:]
    g1s, g3s = [], []
    for s in range(0, len(queries), chunk):
        q = queries[s:s + chunk]
        seeds = torch.zeros(len(q), *out.shape, device=out.device, dtype=out.dtype)
        seeds[torch.arange(len(q)), 0, :, q[:, 1], q[:, 0]] = 1.0
        a, b = torch.autograd.grad(out, (i1, i3), seeds, retain_graph=True, is_grads_batched=True)
        g1s.append(a[:, 0])
        g3s.append(b[:, 0])
    return torch.cat(g1s), torch.cat(g3s)


class BatchedVJP(Tier0):
    """Tier 0's forward, with every chunk of seeds in one batched autograd.grad call."""

    name = "autograd.grad(is_grads_batched=True)"
    chunk = 16

    def rows(self, queries):
        return batched_vjp_rows(self.out, self.i1, self.i3, queries, self.chunk)


def methods(device) -> dict:
    """Every method that can run here: t0, torch's batched VJP, each tier, and the exported
    tier-1 graph on ONNX Runtime (and TensorRT on a GPU) where installed."""
    out = {"t0": lambda m, a, b, mem: Tier0(m, a, b), "vjp": lambda m, a, b, mem: BatchedVJP(m, a, b)}
    for name in TIERS["torch"]:
        if name != "t0":
            out[name] = lambda m, a, b, mem, name=name: make_tier(name, m, a, b, memory=mem)
    for p in ("bf16", "fp16"):
        out[f"t3-{p}"] = lambda m, a, b, mem, p=p: make_tier("t3", m, a, b, memory=mem, precision=p)
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnxscript"):
        out["ort"] = lambda m, a, b, mem: make_tier("auto", m, a, b, memory=mem, backend="onnxruntime")
    if device.type == "cuda" and importlib.util.find_spec("tensorrt"):
        out["trt"] = lambda m, a, b, mem: make_tier("auto", m, a, b, memory=mem, backend="tensorrt")
    return out


def compare(ref, got) -> dict:
    """Matches of one method against tier 0's on the same queries."""
    same, peak_err, score_err = [], 0.0, 0.0
    for (ri, rp, rs), (gi, gp, gs) in zip(ref, got):
        same.append((ri.cpu() == gi.cpu()).float())
        peak_err = max(peak_err, float(((gp.cpu() - rp.cpu()).abs() / rp.cpu().abs().clamp(min=1e-30)).max()))
        score_err = max(score_err, float(((gs.cpu() - rs.cpu()).abs() / rs.cpu().abs().clamp(min=1e-30)).max()))
    return {"same_point": float(torch.cat(same).mean()), "peak_rel_err": peak_err, "score_rel_err": score_err}


def run(args) -> dict:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = args.size[1], args.size[0]
    i1, i3 = test_pair(h, w, device)
    clock, rows, described = Clock(device), [], []
    for spec in args.models:
        model, weights = build_model(spec, device)
        described.append({"model": spec, "weights": weights, "widths": model.config.to_dict()})
        print(f"model {spec}: {weights}", file=sys.stderr)
        rows += time_model(args, device, clock, model, spec, i1, i3)
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "device_type": device.type, "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "python": platform.python_version(), "command": " ".join(sys.argv),
        "isa_limits": {k: os.environ[k] for k in ISA_LIMITS if k in os.environ},
        "size": f"{w}x{h}", "models": described, "memory_budget_bytes": args.memory, "results": rows,
        "notes": "per_query_ms and speedups compare the matching alone; total_ms adds the forward once. "
                 "Rows with extrapolated=true timed queries_timed queries and scaled to the job. "
                 "peak_memory_bytes: on a GPU the allocator's peak above what was allocated before; on the "
                 "CPU the growth of the process's peak resident set, a lower bound (memory an earlier "
                 "run freed is reused without growing it).",
    }


def build_model(spec: str, device):
    """``paper``: the paper's widths with random weights (seed 0; speed does not depend on the
    weights); ``default``: the shipped model; anything else: a checkpoint path."""
    if spec == "paper":
        torch.manual_seed(0)
        return MindNet(MindConfig()).to(device).eval(), "random (paper widths, seed 0)"
    if spec == "default":
        return load_model(None, device=device), "the shipped default model"
    return load_model(spec, device=device), spec


def time_model(args, device, clock, model, spec: str, i1, i3) -> list[dict]:
    """Every chosen method on every job and radius for one model: one record each."""
    h, w = i1.shape[-2:]
    rows = []
    chosen = {k: v for k, v in methods(device).items() if not args.only or k in args.only}
    for name in ("ort", "trt"):  # export and open a session once, untimed (both are cached)
        if name in chosen:
            q = grid_queries((h, w), 16)[:2].to(device)
            chosen[name](model, i1, i3, args.memory).match(q, search_boxes(q, None, (h, w)), (h, w))
    exact_q = grid_queries((h, w), 4)[torch.linspace(0, h * w // 16 - 1, EXACT_QUERIES).long()]
    for radius in args.radii:
        exact_boxes = search_boxes(exact_q, radius, (h, w))
        reference = Tier0(model, i1, i3).match(exact_q.to(device), exact_boxes, (h, w))
        for name, build in chosen.items():
            for job, stride in ((j, JOBS[j]) for j in args.jobs):
                q_all = grid_queries((h, w), stride)
                sample = args.t0_sample if name in ("t0", "vjp") else args.sample
                n = len(q_all) if not sample or sample >= len(q_all) else sample
                pick = torch.linspace(0, len(q_all) - 1, n).long()
                q, boxes = q_all[pick].to(device), search_boxes(q_all[pick], radius, (h, w))
                times, peak = [], 0
                for rep in range(args.warmup + args.repeats):
                    with PeakMemory(device) as mem:
                        with torch.no_grad():
                            engine, t_fwd = clock(lambda: build(model, i1, i3, args.memory))
                        _, t_match = clock(lambda: engine.match(q, boxes, (h, w)))
                    if rep >= args.warmup:
                        times.append((t_fwd, t_match))
                        peak = max(peak, mem.bytes)
                t_fwd = statistics.median(t for t, _ in times)
                per_query = statistics.median(t for _, t in times) / n
                total = t_fwd + per_query * len(q_all)
                rec = {"model": spec, "method": name, "label": getattr(engine, "name", name), "job": job, "stride": stride,
                       "radius": radius, "queries": len(q_all), "queries_timed": n, "extrapolated": n < len(q_all),
                       "forward_ms": 1e3 * t_fwd, "per_query_ms": 1e3 * per_query, "total_ms": 1e3 * total,
                       "queries_per_s": len(q_all) / total, "peak_memory_bytes": peak}
                if job == "semi-dense":
                    rec["exactness_vs_t0"] = compare(reference, engine.match(exact_q.to(device), exact_boxes, (h, w)))
                rows.append(rec)
                print(f"  {spec} {name:4s} {job:10s} R={radius}: {rec['total_ms'] / 1e3:9.2f} s"
                      f"{' (extrapolated)' if rec['extrapolated'] else ''}", file=sys.stderr)
    if not args.only or any(m in args.only for m in C2F):
        rows += time_coarse_to_fine(args, device, clock, model, spec, i1, i3, rows)
    if not args.only or "queries" in args.only:
        rows += time_query_counts(args, device, clock, model, spec, i1, i3)
    for rec in rows:
        t0 = next((r for r in rows if r["method"] == "t0" and r["job"] == rec["job"] and r["radius"] == rec["radius"]),
                  None)
        if t0 is not None:
            rec["speedup_vs_t0_per_query"] = t0["per_query_ms"] / rec["per_query_ms"]
            rec["speedup_vs_t0_total"] = t0["total_ms"] / rec["total_ms"]
    return rows


C2F = {"c2f": "fp32", "c2f-bf16": "bf16"}  # coarse-to-fine methods and the precision each runs in


def time_coarse_to_fine(args, device, clock, model, spec: str, i1, i3, single: list[dict]) -> list[dict]:
    """Coarse-to-fine MIND (levels "auto") in each chosen precision (``C2F``) over every query of
    each job it runs, per radius, with its time against single-level t3's rows of this run
    (``single``) at R=32 and R=None; c2f-bf16 also with its agreement with c2f (fp32) of this run,
    and with --profile each row with a second, instrumented run's per-level breakdown."""
    rows, fp32 = [], {}
    for radius in args.radii:
        for job in (j for j in args.jobs if j == "semi-dense" or args.sample == 0):
            for method in (m for m in C2F if not args.only or m in args.only):
                precision = C2F[method]
                times = []
                for rep in range(args.warmup + args.repeats):
                    engine = Engine(i1[0], i3[0], model=model, device=device, precision=precision)
                    with PeakMemory(device) as mem:
                        m, t = clock(lambda: engine.coarse_to_fine(stride=JOBS[job], radius=radius, levels="auto"))
                    if rep >= args.warmup:
                        times.append(t)
                rec = c2f_record(spec, method, job, radius, m, times, mem.bytes, single)
                if precision == "fp32":
                    fp32[job, radius] = m.matches
                elif (job, radius) in fp32:
                    rec["agreement_vs_c2f_fp32"] = match_agreement(fp32[job, radius], m.matches)
                if args.profile:
                    from bench.c2f_profile import profile_c2f

                    rec["profile"] = profile_c2f(Engine(i1[0], i3[0], model=model, device=device, precision=precision),
                                                 JOBS[job], radius)
                rows.append(rec)
                print(f"  {spec} {method:8s} {job:10s} R={radius}: {rec['total_ms'] / 1e3:9.2f} s ({m.levels} levels, "
                      f"runs {', '.join(f'{t:.2f}' for t in times)} s)", file=sys.stderr)
    return rows


def c2f_record(spec: str, method: str, job: str, radius, m, times: list[float], peak: int, single: list[dict]) -> dict:
    """One coarse-to-fine row: the median of ``times`` and every run, against t3 of this run."""
    total = statistics.median(times)
    rec = {"model": spec, "method": method, "label": f"coarse-to-fine ({C2F[method]}), {m.levels} levels, radii {m.radii}",
           "precision": C2F[method], "job": job, "stride": JOBS[job], "radius": radius, "queries": len(m.matches),
           "queries_timed": len(m.matches), "extrapolated": False, "forward_ms": float("nan"),
           "per_query_ms": 1e3 * total / len(m.matches), "total_ms": 1e3 * total, "runs_ms": [1e3 * t for t in times],
           "queries_per_s": len(m.matches) / total, "peak_memory_bytes": peak, "levels": m.levels,
           "level_radii": m.radii}
    for r in (32, None):
        t3 = next((s for s in single if s["method"] == "t3" and s["job"] == job and s["radius"] == r), None)
        if t3 is not None:
            rec[f"ratio_to_t3_R{r}"] = rec["total_ms"] / t3["total_ms"]
    return rec


def print_table(res: dict) -> None:
    print(f"\n{res['device']} ({res['device_type']}, {res['cpu_threads']} threads), torch {res['torch']}, "
          f"{res['size']}")
    for m in res["models"]:
        print(f"  model {m['model']}: {m['weights']}, widths {m['widths']['encoder']} / {m['widths']['decoder']}")
    print(f"{'model':8s} {'method':8s} {'job':10s} {'R':>4s} {'total s':>9s} {'ms/query':>9s} {'q/s':>8s} "
          f"{'vs t0':>7s} {'peak MB':>8s} {'same pt':>7s}")
    for r in (r for r in res["results"] if r["method"] != "queries"):
        ex = r.get("exactness_vs_t0", {}).get("same_point")
        print(f"{r['model'][:8]:8s} {r['method']:8s} {r['job']:10s} {str(r['radius']):>4s} {r['total_ms'] / 1e3:9.2f} "
              f"{r['per_query_ms']:9.2f} {r['queries_per_s']:8.1f} {r.get('speedup_vs_t0_per_query', 0):6.1f}x "
              f"{r['peak_memory_bytes'] / 2**20:8.0f} {'' if ex is None else f'{ex:7.0%}'}"
              f"{'  *' if r['extrapolated'] else ''}")
    print("* extrapolated from a sample of queries (queries_timed in the JSON)")
    print_query_counts([r for r in res["results"] if r["method"] == "queries"])
    for r in res["results"]:
        if "agreement_vs_c2f_fp32" in r:
            a = r["agreement_vs_c2f_fp32"]
            print(f"{r['method']} against c2f (fp32): {a['same_point']:.1%} of the matches identical, "
                  f"{a['within_1px']:.1%} within 1 px, score error median {a['score_rel_err_median']:.2%}")
        if "profile" in r and r["method"] != "queries":
            from bench.c2f_profile import print_profile

            print_profile(f"{r['method']} R={r['radius']}, instrumented run", r["profile"])


def _size(s: str) -> tuple[int, int]:
    w, h = (int(v) for v in s.lower().split("x"))
    return w, h


def _radius(s: str) -> int | None:
    return None if s.lower() == "none" else int(s)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--size", type=_size, default=(384, 128), help="image size WxH (default 384x128)")
    p.add_argument("--models", nargs="+", default=["paper"],
                   help="models timed in one run, each 'paper' (paper widths, random weights), 'default' (the "
                        "shipped model) or a checkpoint path (default: paper)")
    p.add_argument("--sample", type=int, default=None,
                   help="queries timed per job for the engine tiers, extrapolated (0: all; default: all on a "
                        "GPU, 48 on the CPU)")
    p.add_argument("--t0-sample", type=int, default=4, help="queries timed for t0 and the batched VJP (default 4)")
    p.add_argument("--only", nargs="*", default=None,
                   help="methods to run (t0 vjp t1 t2 t3 t3-bf16 t3-fp16 ort trt c2f c2f-bf16 queries; default all "
                        "that can run; queries: match() with its defaults at 1, 10, 100, 1000 queries and dense, "
                        "bench/query_counts.py)")
    p.add_argument("--finest-levels", nargs="+", type=int, default=[0, 1], choices=[0, 1],
                   help="the queries method's finest_level values (default: 0 1, the whole pyramid and MIND stopped "
                        "one level early, which is what match()'s finest_level='auto' picks before refine='dis')")
    p.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS), help="default: all")
    p.add_argument("--radii", nargs="+", type=_radius, default=list(RADII),
                   help="search radii, 'none' for the whole image (default: none 32)")
    p.add_argument("--memory", type=int, default=None, help="working-memory budget of a tier, bytes")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (default: 1 on a GPU, 0 on the CPU)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--profile", action="store_true",
                   help="add to each c2f row a second, instrumented run's per-level breakdown (bench/c2f_profile.py)")
    add_output_args(p, "latency_<device>.json")
    args = p.parse_args(argv)
    gpu = (args.device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    out = output_path(p, args, f"latency_{'cuda' if gpu else 'cpu'}.json")
    if args.sample is None:
        args.sample = 0 if gpu else 48
    if args.warmup is None:
        args.warmup = 1 if gpu else 0
    return publish(run(args), print_table, out)


if __name__ == "__main__":
    main()
