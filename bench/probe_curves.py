"""Motion-probe learning curves of training runs, from their ``--log`` files (recipe study, long run).

A run trained with ``--match-val-every N --select probe --log LOG`` logs, every N steps, the motion
probe (``mind_engine.evaluation.motion_probe``, on training-side stills) and, every
``--val-every`` steps, its image loss beside the frame average's on the same batches. This
script keeps those records per run as a compact JSON (committed under
bench/results/learning_curve/) and draws, against training steps: the probe's median displacement
at d = 2, 4, 8 px (a blender stays at 0), its score (mean Acc@2 over d <= 8), and the ratio of
the image loss to the frame average's (below 1: the network beats the blend).

    .venv/bin/python bench/probe_curves.py --run base ~/.cache/mind_runs/s_base/log.jsonl \
        --run aux ~/.cache/mind_runs/s_aux/log.jsonl --json-dir bench/results/learning_curve \
        --out bench/results/learning_curve/study.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DISTANCES = ("2", "4", "8")


def read_log(path) -> dict:
    """{"probe": [(step, train_seconds-free record)], "loss": [...]} of one training log."""
    probe, loss = [], []
    for line in Path(path).read_text().splitlines():
        rec = json.loads(line)
        if "probe" in rec:
            probe.append({"step": rec["step"], "score": rec["probe_score"], "match_acc10": rec["match_acc10"],
                          "by_d": {k: {m: v[m] for m in ("median_disp", "APE", "Acc@1", "Acc@2", "centroid")}
                                   for k, v in rec["probe"].items()}})
        elif "train_average_loss" in rec:
            loss.append({k: rec[k] for k in ("step", "train_image_loss", "train_average_loss", "val_ie",
                                              "val_ie_average", "lr", "train_seconds")})
    return {"probe": probe, "loss": loss}


def plot(runs: dict, out: Path) -> None:
    fig, axes = plt.subplots(1, len(DISTANCES) + 2, figsize=(4 * (len(DISTANCES) + 2), 3.6))
    for name, run in runs.items():
        steps = [r["step"] for r in run["probe"]]
        for ax, d in zip(axes, DISTANCES):
            ax.plot(steps, [r["by_d"][d]["median_disp"] for r in run["probe"]], "o-", ms=3, label=name)
        axes[-2].plot(steps, [r["score"] for r in run["probe"]], "o-", ms=3, label=name)
        axes[-1].plot([r["step"] for r in run["loss"]],
                      [r["train_image_loss"] / r["train_average_loss"] for r in run["loss"]], "o-", ms=3, label=name)
    for ax, d in zip(axes, DISTANCES):
        ax.axhline(float(d), ls=":", color="grey")
        ax.set_title(f"median displacement at d = {d} px")
    axes[-2].set_title("probe score (mean Acc@2, d <= 8)")
    axes[-1].axhline(1.0, ls=":", color="grey")
    axes[-1].set_title("image loss / frame average's")
    for ax in axes:
        ax.set_xlabel("training step")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", nargs=2, action="append", metavar=("NAME", "LOG"), required=True,
                   help="a run's name and its training --log file")
    p.add_argument("--json-dir", default=None, help="also write probe_<NAME>.json per run here")
    p.add_argument("--out", required=True, help="PNG to write")
    a = p.parse_args(argv)
    runs = {name: read_log(log) for name, log in a.run}
    if a.json_dir:
        for name, run in runs.items():
            path = Path(a.json_dir) / f"probe_{name}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"run": name, "log": str(dict(a.run)[name]), **run}, indent=1) + "\n")
            print(f"wrote {path}")
    plot(runs, Path(a.out))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
