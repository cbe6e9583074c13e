"""Motion-probe learning curves of training runs, from their ``--log`` files (recipe study, long run).

A run trained with ``--match-val-every N --select probe --log LOG`` logs, every N steps, the motion
probe (``mind_engine.evaluation.motion_probe``, on training-side stills) and, every
``--val-every`` steps, its image loss beside the frame average's on the same batches. This
script keeps those records per run as a compact JSON (committed under
bench/results/learning_curve/) and draws, against training steps: the small-motion precision
(Acc@1.5 at d = 1, 2, 3 px: an integer matcher that rounds each end correctly scores 1, a blender
less the larger d), the large motion that must not be forgotten (Acc@2 at d = 8 px), and the
held-out video's interpolation error against the frame average's (below 1: the network beats
the blend). Logs written before the probe had sub-pixel distances lack the first three.

    .venv/bin/python bench/probe_curves.py --run base ~/.cache/mind_runs/s_base/log.jsonl \
        --run aux ~/.cache/mind_runs/s_aux/log.jsonl --json-dir bench/results/learning_curve \
        --out bench/results/learning_curve/study.png

A run continued from another one's checkpoint (``--init``) is one lineage: give its logs in order,
comma-separated, each optionally cut at the step the next one started from (``LOG@STEP``); steps
and training seconds then run on across the pieces, and ``--hours`` draws against CPU-hours::

    .venv/bin/python bench/probe_curves.py --hours \
        --run default_candidate runs/long_skip/log.jsonl@2000,runs/long_b/log.jsonl,runs/long_c/log.jsonl \
        --json-dir bench/results/learning_curve --out mind_engine/weights/probe_curve.png
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.report import save_figure  # noqa: E402
from mind_engine.safe_write import write_json  # noqa: E402

# (title, where the value is in a probe record, the value a perfect matcher gets)
PANELS = (("Acc@1.5 at d = 1 px", ("1", "Acc@1.5"), 1.0), ("Acc@1.5 at d = 2 px", ("2", "Acc@1.5"), 1.0),
          ("Acc@1.5 at d = 3 px", ("3", "Acc@1.5"), 1.0), ("Acc@2 at d = 8 px", ("8", "Acc@2"), 1.0))
KEPT = ("median_disp", "APE", "Acc@1", "Acc@1.5", "Acc@2", "perpendicular", "on_pixel", "toward_query", "centroid")


def read_lineage(spec: str) -> dict:
    """One lineage ``LOG[@STEP],LOG[@STEP],...``: the pieces' records in order, each piece's steps
    and training seconds offset by where the previous piece stopped (its cut, or its last record)."""
    probe, loss, step0, seconds0 = [], [], 0, 0.0
    for piece in spec.split(","):
        path, _, upto = piece.partition("@")
        run = read_log(path, int(upto) if upto else None)
        # a continued piece's step-0 probe repeats the previous piece's last one
        probe += [{**r, "step": r["step"] + step0} for r in run["probe"] if not (probe and r["step"] == 0)]
        loss += [{**r, "step": r["step"] + step0, "train_seconds": r["train_seconds"] + seconds0}
                 for r in run["loss"]]
        if run["loss"]:
            step0 = (int(upto) if upto else run["loss"][-1]["step"]) + step0
            seconds0 = loss[-1]["train_seconds"]
    return {"probe": probe, "loss": loss}


def read_log(path, upto: int | None = None) -> dict:
    """{"probe": [...], "loss": [...]}: the probe and loss records of one training log, up to
    step ``upto`` when given (a later record of the same step, written after a resume, wins)."""
    probe, loss = {}, {}
    for line in Path(path).expanduser().read_text().splitlines():
        rec = json.loads(line)
        if upto is not None and rec["step"] > upto:
            continue
        if "probe" in rec:
            probe[rec["step"]] = {"step": rec["step"], "score": rec["probe_score"], "match_acc10": rec["match_acc10"],
                                  "by_d": {k: {m: v[m] for m in KEPT if m in v} for k, v in rec["probe"].items()}}
        elif "train_average_loss" in rec:
            loss[rec["step"]] = {k: rec[k] for k in ("step", "train_image_loss", "train_average_loss", "val_ie",
                                                      "val_ie_average", "lr", "train_seconds")}
    return {"probe": [probe[k] for k in sorted(probe)], "loss": [loss[k] for k in sorted(loss)]}


def x_values(run: dict, steps: list, hours: bool) -> list:
    """The steps, or with ``hours`` the CPU-hours of training at each, interpolated between the
    loss records' seconds."""
    if not hours:
        return steps
    known = [(0, 0.0)] + [(r["step"], r["train_seconds"] / 3600) for r in run["loss"]]
    return [float(np.interp(s, [k for k, _ in known], [h for _, h in known])) for s in steps]


def _value(record: dict, where: tuple[str, str]):
    d, metric = where
    return record["by_d"].get(d, {}).get(metric)


def plot(runs: dict, out: Path, hours: bool = False) -> None:
    fig, axes = plt.subplots(1, len(PANELS) + 1, figsize=(4 * (len(PANELS) + 1), 3.6))
    for k, (name, run) in enumerate(runs.items()):
        style = dict(marker="o", ms=3, color=f"C{k}", label=name)  # one colour per run in every panel
        for ax, (_, where, _) in zip(axes, PANELS):
            points = [(r["step"], _value(r, where)) for r in run["probe"] if _value(r, where) is not None]
            if points:
                ax.plot(x_values(run, [s for s, _ in points], hours), [v for _, v in points], **style)
        val = [r for r in run["loss"] if r.get("val_ie") is not None]
        axes[-1].plot(x_values(run, [r["step"] for r in val], hours),
                      [r["val_ie"] / r["val_ie_average"] for r in val], **style)
    for ax, (title, _, best) in zip(axes, PANELS):
        ax.axhline(best, ls=":", color="grey")
        ax.set_title(title)
    axes[-1].axhline(1.0, ls=":", color="grey")
    axes[-1].set_title("held-out video IE / frame average's")
    for ax in axes:
        ax.set_xlabel("training CPU-hours" if hours else "training step")
    axes[-1].legend(fontsize=7)  # every run has a held-out validation curve
    save_figure(fig, out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", nargs=2, action="append", metavar=("NAME", "LOGS"), required=True,
                   help="a run's name and its training --log file (a lineage: LOG[@STEP],LOG[@STEP],...)")
    p.add_argument("--hours", action="store_true", help="draw against training CPU-hours, not steps")
    p.add_argument("--json-dir", default=None, help="also write probe_<NAME>.json per run here")
    p.add_argument("--out", required=True, help="PNG to write")
    a = p.parse_args(argv)
    runs = {name: read_lineage(logs) for name, logs in a.run}
    if a.json_dir:
        for name, run in runs.items():
            path = Path(a.json_dir) / f"probe_{name}.json"
            write_json(path, {"run": name, "log": str(dict(a.run)[name]), **run})
            print(f"wrote {path}")
    plot(runs, Path(a.out), a.hours)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
