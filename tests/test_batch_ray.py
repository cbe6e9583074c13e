"""Matching many pairs on Ray (a local instance started here): results equal the in-process
ones bit for bit, a killed worker loses and repeats nothing, bad pairs are reported."""
from __future__ import annotations

import json

import numpy as np
import pytest

import mind_engine as me
from mind_engine.batch import read_result
from mind_engine.batch.ray_runner import plan
from mind_engine.batch.store import ARRAYS

from conftest import write_batch_inputs

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.usefixtures("one_thread")
OPTS = {"stride": 16, "radius": 8, "threads": 1, "progress": False}
N = 6


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A tiny model, N good 64x64 pairs and one with a missing file, and their in-process results."""
    d = tmp_path_factory.mktemp("batch_ray")
    write_batch_inputs(d, N, seed=1)
    pairs = [(str(d / f"{i}.png"), str(d / f"{(i + 1) % N}.png")) for i in range(N)]
    pairs.insert(3, (str(d / "0.png"), str(d / "missing.png")))
    local = me.match_many(pairs, d / "local", weights=d / "tiny.safetensors", **OPTS)
    return d, pairs, local


def _check_same_as_local(d, out, man, local):
    assert json.dumps(man["pairs"][3]["error"]) == json.dumps(local["pairs"][3]["error"])
    assert "no such file" in man["pairs"][3]["error"]
    assert man["counts"] == {"ok": N, "failed": 1, "resumed": 0}
    keys = [r["key"] for r in man["pairs"]]
    assert len(keys) == len(set(keys)) == N + 1  # every pair exactly once
    for rec in man["pairs"]:
        if rec["status"] == "ok":
            a, b = read_result(d / "local" / rec["file"]), read_result(out / rec["file"])
            assert all(np.array_equal(a[k], b[k]) for k in ARRAYS), rec["key"]  # bit for bit
            assert a["fingerprint"] == b["fingerprint"]


def test_ray_results_equal_in_process_results_and_a_bad_pair_is_reported(cluster, job, tmp_path):
    d, pairs, local = job
    man = me.match_many(pairs, tmp_path, weights=d / "tiny.safetensors", backend="ray", workers=2, **OPTS)
    _check_same_as_local(d, tmp_path, man, local)
    assert man["ray"]["workers"] == 2 and man["ray"]["workers_replaced"] == 0
    assert len({r["worker"] for r in man["pairs"]}) == 2


def test_a_killed_worker_is_replaced_and_every_pair_done_exactly_once(cluster, job, tmp_path):
    d, pairs, local = job
    killed = []

    def kill_first_worker(rec):  # called in the driver as each pair is stored
        if not killed:
            killed.append(rec["worker"])
            ray.kill(ray.get_actor(rec["worker"]))  # it holds another pair, now lost with it

    man = me.match_many(pairs, tmp_path, weights=d / "tiny.safetensors", backend="ray", workers=2,
                        callback=kill_first_worker, **OPTS)
    _check_same_as_local(d, tmp_path, man, local)
    assert man["ray"]["workers_replaced"] >= 1
    assert any(r["attempts"] == 2 for r in man["pairs"])  # the lost pair, retried on another worker
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == sorted(r["file"] for r in man["pairs"] if "file" in r)


def test_plan_never_oversubscribes():
    assert plan({"CPU": 8}, None, 2, None) == {"workers": 2, "threads": 4, "num_gpus": 0, "num_cpus": 4, "device": "cpu"}
    assert plan({"CPU": 8}, None, None, 2)["workers"] == 4
    assert plan({"CPU": 8, "GPU": 4}, None, None, None)["workers"] == 4
    assert plan({"CPU": 8, "GPU": 4}, "cuda", None, None)["num_gpus"] == 1
    assert plan({"CPU": 8, "GPU": 4}, "cpu", None, None)["device"] == "cpu"
    with pytest.raises(ValueError, match="exceeds"):
        plan({"CPU": 2}, None, 2, 2)
    with pytest.raises(ValueError, match="no GPU"):
        plan({"CPU": 2}, "cuda", None, None)
