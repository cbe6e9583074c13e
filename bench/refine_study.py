"""The refinement study (issue 38): which refinement of MIND's matches becomes ``refine=``'s default.

    python bench/refine_study.py [accuracy.py's dataset options] [--no-probe] [--threads 1] [--out JSON] [--force]

The rule, fixed before the run: the default is the variant with the best mean Accuracy@2 over
the datasets whose Accuracy@10 is not below raw MIND's on any dataset.

MIND's raw matches (``refine="none"``, the default call's stride 4, radius 32, levels "auto") are
computed once per pair and precision and cached (``bench/study_raw.py``); every variant refines
the same matches through ``mind_engine.refinement.apply``:

* LK: window 15/21/31 px x pyramid levels 0-4 x move limit 4/8/16/32 px x check tolerance
  0.5/1/2 px x one end (frame 3) or both ends (360 variants);
* ``refine="dis"`` (the dense alternative): OpenCV DIS (medium) started from MIND's matches
  densified into its initial flow (``mind_engine.refinement.dis``), read at MIND's frame-1 ends,
  under each move limit and tolerance (12 variants); and, for reference, the same flow sampled
  on the frame-1 grid and ranked by its forward-backward distance as the DIS baseline (a flow
  method, not a refinement of MIND's matches);
* (not here: ``refine="peak"``, whose points come from the network's rows, a second run of the
  network per pair; it moves each end by at most half a pixel of the finest warped pair, and
  the raw ends are often 2-16 px off).

The rule is applied to the refine= variants (LK and ``refine="dis"``); the JSON also names the
best of all, the grid-sampled DIS included (``best_of_all``), and the best LK variant. Judged by ``bench/accuracy.py``'s datasets and protocol (per pair the same number K of best
evaluable matches for every method, each ranked by its own confidence, failed checks last),
all in one evaluation per dataset with the baselines: MIND raw, KLT ranked by its own error and
KLT ranked by the same forward-backward check, DIS. Then the chosen variant against raw in the
motion probe (``mind_engine.evaluation.motion_probe``, levels "auto"), and refined bf16 against
refined fp32 (issue 38 item 4). Writes bench/results/refine_study_cpu.json and
bench/results/refine_study.png.
"""
from __future__ import annotations

import hashlib
import itertools
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import accuracy, study_raw  # noqa: E402
from bench.report import output_path, save_figure, write_json  # noqa: E402
from mind_engine import refinement, weights as W  # noqa: E402
from mind_engine.refinement import dis  # noqa: E402
from mind_engine.evaluation import baselines as B  # noqa: E402
from mind_engine.evaluation.metrics import evaluate  # noqa: E402
from mind_engine.images import to_tensor  # noqa: E402
from mind_engine.refinement.lk import grey_u8  # noqa: E402

THRESHOLDS = (1, 2, 5, 10, 20, 30)
GRID = {"window": (15, 21, 31), "levels": (0, 1, 2, 3, 4), "move_limit": (4.0, 8.0, 16.0, 32.0),
        "tol": (0.5, 1.0, 2.0), "both": (False, True)}
RAW, KLT, KLT_FB, DIS = "MIND raw", "KLT", "KLT+FB", "DIS"
STRIDE = 4


def variant_name(s: refinement.Settings) -> str:
    return f"LK w{s.window} L{s.levels} m{s.move_limit:g} t{s.tol:g}{' both' if s.both else ''}"


def variants() -> dict[str, refinement.Settings]:
    out = {}
    for values in itertools.product(*GRID.values()):
        s = refinement.Settings(**dict(zip(GRID, values)))
        out[variant_name(s)] = s
    return out


def dis_variants() -> dict[str, refinement.Settings]:
    """``refine="dis"`` under each move limit and check tolerance of the grid."""
    return {f"MIND+DIS m{m:g} t{t:g}": refinement.Settings(move_limit=m, tol=t)
            for m in GRID["move_limit"] for t in GRID["tol"]}


def dis_seeded(img1, img3, m, hw) -> B.Correspondences:
    """DIS (medium) from MIND's matches densified into its initial flow (both directions), sampled on
    the grid and ranked by forward-backward distance as the DIS baseline (a flow method, for
    reference: ``refine="dis"`` is the same flow read at MIND's own frame-1 ends)."""
    g1, g3 = grey_u8(img1), grey_u8(img3)
    f13, f31 = dis.flows(g1, g3, dis.seed_field(m.query, m.pts3 - m.pts1, hw))
    p1 = B.grid(hw, STRIDE)
    p3 = p1 + dis.bilinear(f13, p1)
    h, w = hw
    inside = (p3[:, 0] >= 0) & (p3[:, 0] <= w - 1) & (p3[:, 1] >= 0) & (p3[:, 1] <= h - 1)
    fb = np.linalg.norm(p3 + dis.bilinear(f31, p3) - p1, axis=1)
    return B.Correspondences(p1, p3, np.where(inside, -fb, -np.inf), p1, method="DIS seeded")


def refined(img1, img3, m, s: refinement.Settings, method: str = "lk"):
    return refinement.apply(to_tensor(img1), to_tensor(img3), m, method, s)


def as_corr(m, name: str) -> B.Correspondences:
    flag = None if m.consistent is None else ~m.consistent
    return B.Correspondences.from_matches(m, name, flag)


def run_pair(p, model, sha, grid_variants, timings) -> dict:
    """Every method on one pair: {name: Correspondences}."""
    raw, secs = study_raw.raw_matches(p, model, sha, "fp32")
    raw16, secs16 = study_raw.raw_matches(p, model, sha, "bf16")
    timings["MIND fp32 (cached: 0)"] += secs
    timings["MIND bf16 (cached: 0)"] += secs16
    hw = p.img1.shape[:2]
    res = {RAW: as_corr(raw, RAW)}
    t = time.perf_counter()
    k = B.klt(p.img1, p.img3, STRIDE)
    res[KLT], res[KLT_FB] = k, accuracy.klt_checked(p.img1, p.img3, k, refinement.Settings().tol)
    res[DIS] = B.dis(p.img1, p.img3, STRIDE)
    timings["baselines"] += time.perf_counter() - t
    t = time.perf_counter()
    for name, s in grid_variants.items():
        res[name] = as_corr(refined(p.img1, p.img3, raw, s), name)
    timings["LK variants"] += time.perf_counter() - t
    t = time.perf_counter()
    for name, s in dis_variants().items():
        res[name] = as_corr(refined(p.img1, p.img3, raw, s, "dis"), name)
    res["DIS seeded by MIND (grid)"] = dis_seeded(p.img1, p.img3, raw, hw)
    timings["DIS variants"] += time.perf_counter() - t
    res["MIND bf16 raw"] = as_corr(raw16, "MIND bf16 raw")
    return res, raw, raw16


def choose(results: dict, candidates) -> tuple[str, dict]:
    """The rule: best mean Acc@2 among candidates whose Acc@10 >= raw MIND's on every dataset."""
    mean2, eligible = {}, {}
    for c in candidates:
        eligible[c] = all(r[c]["Acc@10"] >= r[RAW]["Acc@10"] for r in results.values())
        mean2[c] = float(np.mean([r[c]["Acc@2"] for r in results.values()]))
    ok = [c for c in candidates if eligible[c]]
    best = max(ok, key=lambda c: (mean2[c], -list(candidates).index(c))) if ok else None
    return best, {"mean_acc2": mean2, "eligible": eligible}


def probe_both(model, method: str, settings: refinement.Settings) -> dict:
    """The motion probe of raw MIND and of MIND refined by ``settings`` (the default call, levels
    "auto"), the network run once per case."""
    from mind_engine import match
    from mind_engine.evaluation.motion_probe import probe

    cache = {}

    def raw(i1, i3, queries, radius):
        key = hashlib.sha256(i1.numpy().tobytes() + i3.numpy().tobytes()).hexdigest()
        if key not in cache:
            cache[key] = match(i1, i3, queries=queries, radius=radius, model=model, refine="none", progress=False)
        return cache[key]

    def lk(i1, i3, queries, radius):
        return refinement.apply(i1, i3, raw(i1, i3, queries, radius), method, settings)

    out = {}
    for name, matcher in ((RAW, raw), ("MIND refined", lk)):
        r = probe(matcher=matcher)
        out[name] = {"by_d": r["by_d"], "settings": r["settings"], "seconds": r["seconds"]}
    return out


def final_columns(pairs_done, method: str, chosen: refinement.Settings, lk: refinement.Settings) -> list:
    """Per pair (flow, valid, {column: Correspondences}) of the table the README quotes."""
    rows = []
    for p, res, raw, raw16 in pairs_done:
        cols = {c: res[c] for c in (RAW, KLT, KLT_FB, DIS)}
        cols["MIND refined"] = as_corr(refined(p.img1, p.img3, raw, chosen, method), "MIND refined")
        cols["MIND+LK"] = as_corr(refined(p.img1, p.img3, raw, lk), "MIND+LK")
        cols["MIND bf16 raw"] = res["MIND bf16 raw"]
        cols["MIND bf16 refined"] = as_corr(refined(p.img1, p.img3, raw16, chosen, method), "MIND bf16 refined")
        rows.append((p.flow, p.valid, cols))
    return rows


def marginals(results: dict, names: dict) -> dict:
    """Mean Acc@2 over datasets and over the other factors, per value of each factor of the grid."""
    out = {}
    for factor, values in GRID.items():
        out[factor] = {str(v): float(np.mean([np.mean([r[n]["Acc@2"] for r in results.values()])
                                              for n, s in names.items() if getattr(s, factor) == v]))
                       for v in values}
    return out


def figure(doc: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    final = doc["final"]
    cols = [RAW, "MIND+LK", "MIND refined", KLT, KLT_FB, DIS]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    ax = axes[0]
    names = list(final)
    width = 0.8 / len(cols)
    for i, c in enumerate(cols):
        x = np.arange(len(names) * 2)
        vals = [final[d][c][m] for d in names for m in ("Acc@1", "Acc@2")]
        ax.bar(x + i * width, vals, width, label=c)
    ax.set_xticks(np.arange(len(names) * 2) + 0.4 - width / 2)
    ax.set_xticklabels([f"{d}\n{m}" for d in names for m in ("Acc@1", "Acc@2")], fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, ncol=3)
    ax.set_title(f"same-N protocol, stride {STRIDE}; refined = {doc['chosen']}", fontsize=9)
    ax = axes[1]
    for factor, by in doc["marginals"].items():
        ax.plot(range(len(by)), list(by.values()), "o-", label=factor)
        for j, v in enumerate(by):
            ax.annotate(v, (j, by[v]), fontsize=6)
    ax.set_xlabel("factor value (index)")
    ax.set_ylabel("mean Acc@2 over datasets and other factors")
    ax.legend(fontsize=8)
    ax.set_title("LK variants: each factor's marginal", fontsize=9)
    return save_figure(fig, path)


def main(argv=None):
    parser = accuracy.build_parser()
    parser.description = __doc__.split("\n\n")[0]
    parser.add_argument("--no-probe", action="store_true", help="skip the motion probe")
    parser.set_defaults(out=None)
    a = parser.parse_args(argv)
    out = output_path(parser, a, "refine_study_cpu.json")
    fig_path = out.with_name("refine_study.png")
    if a.threads:
        torch.set_num_threads(a.threads)
    model = W.load_model(a.weights, device="cpu")
    wpath = Path(a.weights) if a.weights else W.DEFAULT_WEIGHTS
    sha = hashlib.sha256(wpath.read_bytes()).hexdigest()
    grid_variants = variants()
    t_all = time.perf_counter()
    results, done_by_dataset, seconds = {}, {}, {}
    for dname, pairs in accuracy.datasets(a):
        timings = dict.fromkeys(("MIND fp32 (cached: 0)", "MIND bf16 (cached: 0)", "baselines", "LK variants",
                                 "DIS variants"), 0.0)
        done = []
        for p in pairs:
            res, raw, raw16 = run_pair(p, model, sha, grid_variants, timings)
            done.append((p, res, raw, raw16))
            print(f"  {p.name}: done ({time.perf_counter() - t_all:.0f} s)", flush=True)
        results[dname] = evaluate([(p.flow, p.valid, res) for p, res, _, _ in done], 1.0, THRESHOLDS)
        done_by_dataset[dname], seconds[dname] = done, timings
    dis_named = dis_variants()
    candidates = {**grid_variants, **dis_named}  # every refine= variant (the grid-sampled DIS is a flow method)
    best, rule = choose(results, list(candidates) + ["DIS seeded by MIND (grid)"])
    best_refine, _ = choose(results, list(candidates))
    best_lk, _ = choose(results, list(grid_variants))
    print(f"chosen by the rule: {best} (mean Acc@2 {rule['mean_acc2'][best]:.3f}); among refine= variants "
          f"{best_refine}; among LK variants {best_lk} ({rule['mean_acc2'][best_lk]:.3f})")
    method, chosen = ("dis" if best_refine in dis_named else "lk"), candidates[best_refine]
    final = {d: evaluate(final_columns(done, method, chosen, grid_variants[best_lk]), 1.0, THRESHOLDS) for d, done in done_by_dataset.items()}
    for d, r in final.items():
        print(f"== {d}")
        for c, v in r.items():
            print(f"  {c:<20} APE {v['APE']:6.2f}  " + "  ".join(f"Acc@{t} {v[f'Acc@{t}']:.3f}" for t in THRESHOLDS))
    bf16 = {d: {f"Acc@{t}": r["MIND bf16 refined"][f"Acc@{t}"] - r["MIND refined"][f"Acc@{t}"] for t in (1, 2)}
            for d, r in final.items()}
    doc = {"command": " ".join(["refine_study.py"] + (argv if argv is not None else sys.argv[1:])),
           "machine": {"platform": platform.platform(), "processor": platform.processor(),
                       "threads": torch.get_num_threads(), "torch": torch.__version__},
           "weights": {"path": str(wpath), "sha256": sha},
           "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(a).items()},
           "mind_call": {"stride": STRIDE, "radius": a.radius, "levels": "auto", "refine": "none (cached)"},
           "rule": "the variant with the best mean Acc@2 over the datasets whose Acc@10 is not below raw MIND's "
                   "on any dataset",
           "grid": {k: list(v) for k, v in GRID.items()}, "best_of_all": best, "chosen": best_refine,
           "chosen_method": method, "chosen_settings": vars(chosen), "best_lk": best_lk,
           "best_lk_settings": vars(grid_variants[best_lk]),
           "final": final, "bf16_minus_fp32_refined": bf16,
           "mean_acc2": rule["mean_acc2"], "eligible": rule["eligible"],
           "marginals": marginals(results, grid_variants), "all": results, "seconds": seconds}
    if not a.no_probe:
        doc["motion_probe"] = probe_both(model, method, chosen)
    doc["total_seconds"] = time.perf_counter() - t_all
    write_json(doc, out)
    print(f"wrote {figure(doc, fig_path)}")
    return doc


if __name__ == "__main__":
    main()
