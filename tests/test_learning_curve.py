"""bench/learning_curve.py reads bench/accuracy.py JSONs and plots the model card's curve."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
from bench import learning_curve  # noqa: E402


def _accuracy_json(path, acc):
    methods = {"MIND": {"Acc@10": acc, "APE": 10 - acc}, "KLT": {"Acc@10": 0.9, "APE": 2.0},
               "DIS": {"Acc@10": 1.0, "APE": 0.5}}
    path.write_text(json.dumps({"datasets": {"synthetic": {"results": {"keep=1": methods}}}}))
    return str(path)


def test_points_are_read_and_plotted(tmp_path):
    a, b = _accuracy_json(tmp_path / "a.json", 0.1), _accuracy_json(tmp_path / "b.json", 0.3)
    hours, point = learning_curve.read_point("2.5", b)
    assert hours == 2.5 and point["synthetic"]["MIND"]["Acc@10"] == 0.3
    learning_curve.main(["--point", "6", b, "--point", "2.5", a, "--out", str(tmp_path / "c.png")])
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_a_json_without_the_keep_1_results_is_refused(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"datasets": {"synthetic": {"results": {}}}}))
    with pytest.raises(KeyError):
        learning_curve.read_point("1", str(path))
