"""bench/device_run.sh --dry-run: the prepared GPU run, on the CPU with tiny sizes, completes every
stage and leaves its files in OUT (so the script is known to work before a GPU is lent)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and timeout")
def test_dry_run_completes_every_stage(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "BUDGET": "900",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", str(ROOT / "bench" / "device_run.sh"), "--dry-run"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=1200)
    log = (tmp_path / "device_run.log").read_text() if (tmp_path / "device_run.log").exists() else proc.stderr
    assert proc.returncode == 0, log[-3000:]
    stages = json.loads((tmp_path / "stages.json").read_text())
    ran = {s["stage"]: s.get("rc") for s in stages if s["stage"] != "end"}
    assert set(ran) - {"clips"} == {"build", "tests", "train", "judge", "latency", "precision"}, ran
    assert all(rc == 0 for rc in ran.values()), (ran, log[-3000:])
    names = {p.name for p in tmp_path.iterdir()}
    assert {"latency_cpu.json", "precision_cpu.json", "weights.safetensors", "judge_cpu.json",
            "tests_cpu.log", "device_run.log", "stages.json", "train_log.jsonl"} <= names
    assert len(names) <= 8 and all(p.stat().st_size < 16 << 20 for p in tmp_path.iterdir())
    judge = json.loads((tmp_path / "judge_cpu.json").read_text())
    assert isinstance(judge["adopt"], bool) and set(judge["interpolation"]["rows"]) == {
        f"gap {g} {m}" for g in (1, 2, 4) for m in ("IE", "NE")}
    lat = json.loads((tmp_path / "latency_cpu.json").read_text())
    assert {r["method"] for r in lat["results"]} == {"t3", "t3-bf16", "queries"}
    assert all("exactness_vs_t0" in r for r in lat["results"] if r["method"] != "queries")
    users_call = [r for r in lat["results"] if r["method"] == "queries"]  # the default call, refinement included
    assert users_call and all(0 < r["refinement_ms"] < r["total_ms"] for r in users_call)
    assert [s["stage"] for s in stages][-3:] == ["train", "judge", "end"]  # measurements first, training after
    train_log = log[log.index("train: start"):]
    assert "30 % moved stills" in train_log and "20 % layered" in train_log and "50 % video" in train_log, \
        "the video stage's mixture (issue 41's recipe) must reach the training command"
