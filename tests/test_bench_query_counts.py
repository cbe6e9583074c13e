"""bench/latency.py --only queries (bench/query_counts.py): time against the number of queries,
run end to end on a tiny model and a small pair; the rows say what each level matched and how the
matches agree with the dense run's."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

import mind_engine as me

from conftest import SMALL

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("one_thread")


def test_latency_reports_time_against_the_number_of_queries(tmp_path, monkeypatch):
    torch.manual_seed(0)
    weights = me.save_model(me.MindNet(**SMALL).eval(), tmp_path / "tiny.safetensors")
    monkeypatch.syspath_prepend(str(ROOT))
    spec = importlib.util.spec_from_file_location("latency_under_test", ROOT / "bench" / "latency.py")
    latency = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(latency)
    out = tmp_path / "q.json"
    monkeypatch.setattr(sys, "argv", ["latency.py"])
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")  # read by ATen at import, long done: recorded only
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    latency.main(["--models", str(weights), "--only", "queries", "--finest-levels", "0", "1", "--size", "160x64",
                  "--device", "cpu", "--out", str(out)])
    rows = json.loads(out.read_text())["results"]
    assert json.loads(out.read_text())["isa_limits"] == {"ATEN_CPU_CAPABILITY": "avx2"}
    grid = 40 * 16  # the stride-4 grid of 160x64
    assert [(r["finest_level"], r["job"]) for r in rows] == [(f, j) for f in (0, 1)
                                                             for j in ("n=dense", "n=1", "n=10", "n=100")]
    dense, one = rows[0], rows[1]
    assert dense["queries"] == grid and dense["ratio_to_dense"] == 1.0 and dense["agreement_vs_dense"]["same_point"] == 1.0
    assert one["queries"] == 1 and one["level_queries"]["0"] == 1
    assert one["level_queries"]["1"] < dense["level_queries"]["1"] == grid // 4  # the coarse grid, pruned
    assert "0" not in rows[4]["level_queries"] and rows[4]["queries"] == grid  # finest_level=1: no level-0 MIND
    for r in rows:  # the default refinement ("dis") timed inside the same calls, MIND the rest
        assert 0 < r["refinement_ms"] < r["total_ms"] and abs(r["mind_ms"] + r["refinement_ms"] - r["total_ms"]) < 1e-6
