"""The model card's learning curve: matching Accuracy@10 and APE against training CPU-hours.

Each point is one `bench/accuracy.py` JSON, measured on one checkpoint, with the CPU-hours that
checkpoint's training took (summed over the runs it descends from). KLT and DIS, measured in the
same JSONs, are drawn as the levels to reach.

    .venv/bin/python bench/learning_curve.py --point 2.6 acc_default.json --point 6.1 acc_e.json \
        --out mind_engine/weights/learning_curve.png
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.report import save_figure  # noqa: E402

KEEP = "keep=1"
METRICS = ("Acc@10", "APE")


def read_point(hours: str, path: str) -> tuple[float, dict]:
    """(CPU-hours, {dataset: {method: {metric: value}}}) from one accuracy JSON."""
    doc = json.loads(Path(path).read_text())
    return float(hours), {name: entry["results"][KEEP] for name, entry in doc["datasets"].items()}


def plot(points: list[tuple[float, dict]], out: Path) -> None:
    points = sorted(points, key=lambda p: p[0])
    datasets = [d for d in points[-1][1] if all(d in p[1] for p in points)]
    fig, axes = plt.subplots(len(METRICS), len(datasets), figsize=(4 * len(datasets), 6), squeeze=False)
    hours = [h for h, _ in points]
    for col, dataset in enumerate(datasets):
        for row, metric in enumerate(METRICS):
            ax = axes[row][col]
            ax.plot(hours, [p[dataset]["MIND"][metric] for _, p in points], "o-", label="MIND (default widths)")
            for method, style in (("KLT", "--"), ("DIS", ":")):
                ax.axhline(points[-1][1][dataset][method][metric], ls=style, color="grey", label=method)
            ax.set_title(f"{dataset}: {metric}")
            ax.set_xlabel("training CPU-hours (2-core CPU)")
            if metric == "APE":
                ax.set_yscale("log")
            if row == 0 and col == 0:
                ax.legend(fontsize=8)
    save_figure(fig, out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--point", nargs=2, action="append", metavar=("CPU_HOURS", "ACCURACY_JSON"), required=True,
                   help="one checkpoint: its training CPU-hours and its bench/accuracy.py JSON")
    p.add_argument("--out", required=True, help="PNG to write")
    a = p.parse_args(argv)
    plot([read_point(h, j) for h, j in a.point], Path(a.out))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
