"""bench/judge_weights.py: issue 41's adoption rule applied to benchmark JSONs (no benchmark runs here)."""
import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("judge_weights", Path(__file__).parents[1] / "bench" / "judge_weights.py")
J = importlib.util.module_from_spec(spec)
spec.loader.exec_module(J)


def interp_doc(model_ie, avg_ie, still_ie):
    per_gap = {str(g): {"mean": {"mind": {"IE": model_ie, "NE": model_ie / 4},
                                 "average": {"IE": avg_ie, "NE": avg_ie / 4}}} for g in J.GAPS}
    return {"per_gap": per_gap, "still": {"IE": still_ie}}


def acc_doc(acc2, acc10):
    res = {"MIND": {"Acc@2": acc2, "Acc@10": acc10}}
    return {"datasets": {"synthetic": {"results": {J.KEEP: res}}, "layered": {"results": {J.KEEP: res}}}}


@pytest.mark.parametrize("model, still, beats, still_ok", [(10.0, 2.0, True, True), (12.0, 2.0, False, True),
                                                            (10.0, 3.5, True, False)])
def test_interpolation_conditions(model, still, beats, still_ok):
    v = J.interpolation_verdict(interp_doc(model, 11.0, still))
    assert v["beats_average"] is beats and v["still_ok"] is still_ok


def test_accuracy_margin_is_one_hundredth_per_dataset_and_metric():
    bundled = acc_doc(0.80, 0.95)
    assert J.accuracy_verdict(acc_doc(0.795, 0.945), bundled, "MIND")["not_worse"]
    assert not J.accuracy_verdict(acc_doc(0.785, 0.99), bundled, "MIND")["not_worse"]
    worse_one = acc_doc(0.80, 0.95)
    worse_one["datasets"]["layered"] = {"results": {J.KEEP: {"MIND": {"Acc@2": 0.80, "Acc@10": 0.93}}}}
    assert not J.accuracy_verdict(worse_one, bundled, "MIND")["not_worse"]
