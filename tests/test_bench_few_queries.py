"""bench/few_queries.py: the default call at a few queries against the dense call at the same points,
end to end on a tiny model and small pairs; its rule's verdict, written and printed."""
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


def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.setattr(sys, "argv", ["few_queries.py"])
    spec = importlib.util.spec_from_file_location("few_queries_under_test", ROOT / "bench" / "few_queries.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_few_queries_reports_both_calls_at_the_same_points(tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    weights = me.save_model(me.MindNet(**SMALL).eval(), tmp_path / "tiny.safetensors")
    out = tmp_path / "few.json"
    doc = bench(monkeypatch).main(["--weights", str(weights), "--synthetic", "1", "--layered", "1", "--moto-width", "0",
                                   "--size", "96x64", "--counts", "1", "10", "--pool", "3", "--out", str(out)])
    assert json.loads(out.read_text())["verdict"] == doc["verdict"]
    assert doc["datasets"].keys() == {"synthetic", "layered"}
    for per_n in doc["datasets"].values():
        assert per_n.keys() == {"1", "10"}
        assert per_n["1"]["dis"]["draws"] == 3 and per_n["10"]["dis"]["draws"] == 1
        for n, per_method in per_n.items():
            assert per_method.keys() == {"dis", "lk"}
            for r in per_method.values():
                assert r["points"] == (3 if n == "1" else 10) and r["few"]["n"] == r["dense"]["n"]
                assert r["fine"] == (r["few"]["Acc@2"] >= r["dense"]["Acc@2"] - 0.01)
                assert 0 <= r["same_end_as_dense"] <= 1
    assert doc["verdict"] == "pass" if all(r["fine"] for per_n in doc["datasets"].values()
                                           for per_method in per_n.values() for r in per_method.values()) \
        else doc["verdict"].startswith("fail (")
    assert "verdict:" in capsys.readouterr().out


def test_few_queries_bad_options_are_one_line(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as e:
        bench(monkeypatch).main(["--counts", "0", "--out", str(tmp_path / "x.json")])
    assert e.value.code == 2 and "--counts must be integers >= 1, got [0]" in capsys.readouterr().err
