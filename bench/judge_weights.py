"""Should these weights become the default? The rule of issue 41, fixed before any run, applied in one run.

    python bench/judge_weights.py CANDIDATE.safetensors [--out bench/results/judge_<name>.json]

New default weights are adopted only when, in one run of this script:

1. interpolation beats the frame average on the held-out video (``bench/interpolation.py --gaps
   1 2 4``) at every gap, in both IE and NE;
2. the still-frame IE (the model given the same held-out frame twice) is below ``STILL_IE_MAX``;
3. matching with the defaults of the moment (``bench/accuracy.py`` with its defaults: the default
   call, refinement included) is not worse than the bundled model's by more than
   ``ACC_MARGIN`` in Accuracy@2 or Accuracy@10 on any dataset.

Both benchmarks run here as subprocesses (their own JSONs are kept beside this one's, in
``--work``); the bundled model is measured in the same run, so the comparison shares pairs,
thresholds, machine and code. The verdict names each condition and its figures.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mind_engine.cliargs import refuse  # noqa: E402
from bench.report import add_output_args, output_path, write_json  # noqa: E402

GAPS = (1, 2, 4)
STILL_IE_MAX = 3.0
ACC_MARGIN = 0.01
ACC_METRICS = ("Acc@2", "Acc@10")
KEEP = "keep=1"


def run_bench(script: str, args: list[str], out: Path) -> dict:
    """Run ``bench/<script>`` with ``args`` writing ``out``; its JSON."""
    cmd = [sys.executable, str(ROOT / "bench" / script), *args, "--out", str(out), "--force"]
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return json.loads(out.read_text())


def interpolation_verdict(doc: dict) -> dict:
    """Conditions 1 and 2 from one ``bench/interpolation.py`` JSON."""
    rows, ok = {}, True
    for g in GAPS:
        mean = doc["per_gap"][str(g)]["mean"]
        for metric in ("IE", "NE"):
            model, avg = mean["mind"][metric], mean["average"][metric]
            rows[f"gap {g} {metric}"] = {"model": model, "average": avg, "beats": model < avg}
            ok &= model < avg
    still = doc["still"]["IE"]
    return {"beats_average": ok, "rows": rows, "still_IE": still, "still_ok": still < STILL_IE_MAX}


def accuracy_verdict(candidate: dict, bundled: dict, column: str) -> dict:
    """Condition 3: per dataset, the default call's Acc@2 / Acc@10, candidate against bundled."""
    rows, ok = {}, True
    for name, entry in bundled["datasets"].items():
        b = entry["results"][KEEP][column]
        c = candidate["datasets"][name]["results"][KEEP][column]
        for metric in ACC_METRICS:
            fine = c[metric] >= b[metric] - ACC_MARGIN
            rows[f"{name} {metric}"] = {"candidate": c[metric], "bundled": b[metric], "ok": fine}
            ok &= fine
        raw_b = entry["results"][KEEP].get("MIND raw")
        raw_c = candidate["datasets"][name]["results"][KEEP].get("MIND raw")
        for metric in ("Acc@5", "Acc@10"):  # the raw readout, reported (the seed of the refinement)
            if raw_b is not None and raw_c is not None:
                rows[f"{name} raw {metric}"] = {"candidate": raw_c[metric], "bundled": raw_b[metric], "reported": True}
    return {"not_worse": ok, "rows": rows, "column": column}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("candidate", type=Path, help="the weights to judge (.safetensors)")
    p.add_argument("--work", type=Path, default=None,
                   help="folder for the benchmarks' own JSONs (default: beside --out)")
    p.add_argument("--column", default="MIND", help="bench/accuracy.py's column of the default call (default: MIND)")
    p.add_argument("--threads", default="2", help="threads of both benchmarks (default 2)")
    p.add_argument("--interpolation-args", default="", help="more arguments of bench/interpolation.py, one string "
                   "(a quick run: '--every 8 --max-side 160'; other clips: '--data A.mp4 B/')")
    p.add_argument("--accuracy-args", default="", help="more arguments of both bench/accuracy.py runs, one string")
    p.add_argument("--device", default="cpu",
                   help="device of the accuracy runs (interpolation takes the model's: CUDA when there)")
    add_output_args(p, "judge_<candidate>.json")
    a = p.parse_args(argv)
    if not a.candidate.is_file():
        refuse(p.prog, f"{a.candidate}: no such file")
    out = output_path(p, a, f"judge_{a.candidate.stem}.json")
    work = a.work or out.parent / f"{out.stem}_runs"
    work.mkdir(parents=True, exist_ok=True)
    common = ["--threads", a.threads]
    interp = run_bench("interpolation.py", ["--gaps", *map(str, GAPS), "--weights", str(a.candidate), *common,
                                            *shlex.split(a.interpolation_args)], work / "interpolation.json")
    acc_args = [*common, "--device", a.device, *shlex.split(a.accuracy_args)]
    acc_c = run_bench("accuracy.py", ["--weights", str(a.candidate), *acc_args], work / "accuracy_candidate.json")
    acc_b = run_bench("accuracy.py", acc_args, work / "accuracy_bundled.json")
    iv, av = interpolation_verdict(interp), accuracy_verdict(acc_c, acc_b, a.column)
    adopt = iv["beats_average"] and iv["still_ok"] and av["not_worse"]
    doc = {"candidate": str(a.candidate), "rule": {"gaps": list(GAPS), "still_IE_max": STILL_IE_MAX,
                                                   "accuracy_margin": ACC_MARGIN, "metrics": list(ACC_METRICS)},
           "interpolation": iv, "accuracy": av, "adopt": adopt,
           "runs": {"interpolation": str(work / "interpolation.json"),
                    "accuracy_candidate": str(work / "accuracy_candidate.json"),
                    "accuracy_bundled": str(work / "accuracy_bundled.json")}}
    for section in (iv["rows"], av["rows"]):
        for k, v in section.items():
            print(f"  {k:<28} {json.dumps(v)}")
    print(f"  still-frame IE {iv['still_IE']:.2f} (must be < {STILL_IE_MAX})")
    print(f"verdict: {'ADOPT' if adopt else 'do not adopt'}")
    write_json(doc, out)
    return doc


if __name__ == "__main__":
    main()
