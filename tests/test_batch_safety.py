"""Batch jobs that cannot lose data: one job at a time holds an output folder; keys are checked
before any work; the manifest agrees with the result files after a finish, Ctrl-C, SIGTERM,
an error, or (repaired by the next job) SIGKILL; every argument is checked before any work."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import mind_engine as me
from mind_engine.batch import Pair, read_result
from mind_engine.batch.lock import FolderBusyError, FolderLock
from mind_engine.batch.store import MANIFEST

from conftest import write_batch_inputs

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
OPTS = {"stride": 16, "radius": 8, "threads": 1, "progress": False}
N = 16  # pairs of the subprocess jobs: enough that a signal lands mid-job


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("safety")
    write_batch_inputs(d, 6, seed=1)
    (d / "pairs.txt").write_text("".join(f"{i % 6}.png {(i + 1) % 6}.png\n" for i in range(N)))
    (d / "four.txt").write_text("".join(f"{i}.png {i + 1}.png\n" for i in range(4)))
    return d


def _pairs(data, n=6):
    return [(data / f"{i % 6}.png", data / f"{(i + 1) % 6}.png") for i in range(n)]


def _manifest(out: Path) -> dict:
    return json.loads((out / MANIFEST).read_text())


def _agrees_with_files(out: Path) -> dict:
    """The manifest's ok records are exactly the result files, each of the manifest's job."""
    man = _manifest(out)
    files = {p.stem for p in out.glob("*.npz")}
    assert {r["key"] for r in man["pairs"] if r["status"] == "ok"} == files
    assert all(read_result(out / f"{k}.npz")["fingerprint"] == man["fingerprint"] for k in files)
    assert not list(out.glob(".*.tmp"))
    return man


def _cli_job(data, pairs, out, stride, go=None):
    """``mind-engine match-pairs`` in a subprocess; given ``go``, it says it is ready (``go.<pid>``) and
    waits for the file ``go`` before it starts."""
    wait = (f"import os, time\nopen(f'{go}.{{os.getpid()}}', 'w').close()\n"
            f"while not os.path.exists({str(go)!r}): time.sleep(0.002)\n") if go else ""
    code = (f"import sys, torch\ntorch.set_num_threads(1)\nfrom mind_engine.cli import main\n{wait}"
            f"sys.exit(main(sys.argv[1:]))\n")
    argv = ["match-pairs", str(data / pairs), "--out", str(out), "--weights", str(data / "tiny.safetensors"),
            "--stride", str(stride), "--radius", "8", "--threads", "1", "--no-progress"]
    return subprocess.Popen([sys.executable, "-c", code, *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_jobs_started_together_on_one_folder_lose_nothing(data, tmp_path):
    out, go = tmp_path / "out", tmp_path / "go"
    jobs = {stride: _cli_job(data, "four.txt", out, stride, go) for stride in (16, 32)}
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("go.*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # both have imported everything and start now
    results = {stride: (p.wait(timeout=300), *p.communicate()) for stride, p in jobs.items()}
    winners = [s for s, (code, _, _) in results.items() if code == 0]
    assert len(winners) == 1, results  # the other was refused: the folder is held, or holds the first's results
    (loser_code, _, loser_err), = [r for s, r in results.items() if s not in winners]
    assert loser_code == 2 and loser_err.count("\n") == 1, loser_err
    assert "is in use by another job (pid" in loser_err or "holds results of other settings" in loser_err
    man = _agrees_with_files(out)
    assert man["state"] == "finished" and man["settings"]["stride"] == winners[0] and man["counts"]["ok"] == 4
    model = me.load_model(data / "tiny.safetensors")
    r = read_result(out / "line000003.npz")
    ref = me.match(data / "2.png", data / "3.png", model=model, stride=winners[0], radius=8)
    np.testing.assert_array_equal(r["pts1"], ref.pts1)


def test_sigterm_finalises_the_manifest_and_a_rerun_completes(data, tmp_path):
    out = tmp_path / "out"
    proc = _cli_job(data, "pairs.txt", out, 16)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("*.npz")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        code, (_, err) = proc.wait(timeout=60), proc.communicate()
    finally:
        proc.kill()
    assert code == 143 and err.endswith("mind-engine match-pairs: terminated\n"), err
    man = _agrees_with_files(out)
    done = man["counts"]["ok"]
    assert man["state"] == "interrupted" and 1 <= done < N, man["counts"]
    again = me.match_many(data / "pairs.txt", out, weights=data / "tiny.safetensors", **OPTS)
    assert again["state"] == "finished" and again["counts"] == {"ok": N, "failed": 0, "resumed": done}
    _agrees_with_files(out)


def test_a_held_folder_is_refused_at_once_naming_the_holder(data, tmp_path):
    tmp_path.mkdir(exist_ok=True)
    with FolderLock(tmp_path):
        t = time.monotonic()
        with pytest.raises(FolderBusyError, match=rf"in use by another job \(pid {os.getpid()} on "
                                                  rf"{socket.gethostname()}, started 20"):
            me.match_many(_pairs(data, 1), tmp_path, weights=data / "tiny.safetensors", **OPTS)
        assert time.monotonic() - t < 5
    assert not (tmp_path / MANIFEST).exists()
    assert me.match_many(_pairs(data, 1), tmp_path, weights=data / "tiny.safetensors", **OPTS)["state"] == "finished"


def test_a_killed_job_s_manifest_is_repaired_by_the_next_job(data, tmp_path):
    """SIGKILL leaves state "running" with the records of the last write (every 5 s) and maybe a
    temporary file: the next job on the folder (its lock free) reconciles it with the files."""
    w = data / "tiny.safetensors"
    me.match_many(_pairs(data), tmp_path, weights=w, **OPTS)
    man = _manifest(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({**man, "state": "running", "pairs": man["pairs"][:2]}))
    (tmp_path / ".000004.npz.999.1.tmp").write_bytes(b"half a file")
    with pytest.raises(ValueError, match="holds results of other settings"):
        me.match_many(_pairs(data), tmp_path, weights=w, **{**OPTS, "stride": 8})
    repaired = _agrees_with_files(tmp_path)
    assert repaired["state"] == "interrupted" and repaired["counts"]["ok"] == 6
    assert me.match_many(_pairs(data), tmp_path, weights=w, **OPTS)["counts"] == {"ok": 6, "failed": 0, "resumed": 6}


def test_ctrl_c_and_errors_leave_a_manifest_that_agrees_with_the_files(data, tmp_path):
    def stop_after(n, exc):
        seen = []

        def callback(rec):
            seen.append(rec)
            if len(seen) == n:
                raise exc
        return callback

    for out, exc, state in ((tmp_path / "c", KeyboardInterrupt(), "interrupted"),
                            (tmp_path / "e", RuntimeError("a callback bug"), "aborted")):
        with pytest.raises(type(exc)):
            me.match_many(_pairs(data), out, weights=data / "tiny.safetensors", callback=stop_after(2, exc), **OPTS)
        man = _agrees_with_files(out)
        assert man["state"] == state and man["counts"]["ok"] == 2
    assert _manifest(tmp_path / "e")["error"] == "RuntimeError: a callback bug"


def test_duplicate_keys_are_refused_before_any_work(data, tmp_path):
    dup = [Pair("k", data / "0.png", data / "1.png", "a", "b"), Pair("k", data / "2.png", data / "3.png", "c", "d")]
    with pytest.raises(ValueError, match="pair key 'k' occurs twice"):
        me.match_many(dup, tmp_path / "list", weights=data / "tiny.safetensors", **OPTS)
    assert not (tmp_path / "list").exists()
    with pytest.raises(ValueError, match="pair key 'k' occurs twice"):  # a stream: before the second is matched
        me.match_many(iter(dup), tmp_path / "stream", weights=data / "tiny.safetensors", **OPTS)
    assert read_result(tmp_path / "stream" / "k.npz")["img1"] == "a"  # the first result is intact
    assert _agrees_with_files(tmp_path / "stream")["state"] == "aborted"


@pytest.mark.parametrize("kwargs, message", [
    (dict(stride=1.5), "stride must be a positive integer, got 1.5"),
    (dict(stride=True), "stride must be a positive integer, got True"),
    (dict(radius=2.5), "radius must be None or a non-negative integer, got 2.5"),
    (dict(radius=True), "radius must be None or a non-negative integer, got True"),
    (dict(threads=0), "threads must be an integer in 1.."),
    (dict(threads=-2), "threads must be an integer in 1.."),
    (dict(threads=10 ** 5), f"threads must be an integer in 1..{os.cpu_count()} (this machine's cores), got 100000"),
    (dict(workers=0, backend="ray"), "workers must be None or a positive integer, got 0"),
    (dict(retries=-1), "retries must be a non-negative integer, got -1"),
    (dict(queries=np.ones((2, 2), bool)), "queries must be an (N, 2) array of numeric"),
    (dict(queries=[[1, 2]], stride=0), "stride must be a positive integer, got 0"),
    (dict(memory=1e20), "memory=1e+20 bytes is more than cpu has"),
    (dict(tier=["t3"]), "unknown tier ['t3']"),
    (dict(device="tpu"), "device='tpu' is not a device"),
    (dict(backend="dask"), "unknown backend 'dask'; backend must be one of ['local', 'ray']"),
    (dict(callback="print"), "callback must be a function"),
], ids=lambda v: str(v)[:40])
def test_bad_arguments_are_refused_before_any_work(kwargs, message, data, tmp_path):
    with pytest.raises((ValueError, TypeError)) as e:
        me.match_many(_pairs(data, 1), tmp_path / "out", weights=data / "tiny.safetensors", **{**OPTS, **kwargs})
    assert message in str(e.value)
    assert not (tmp_path / "out").exists()


def test_cuda_on_a_cpu_only_machine_and_output_paths_are_named(data, tmp_path, monkeypatch):
    (tmp_path / "f").write_text("a file")
    with pytest.raises(ValueError, match=r"out_dir .*/f is a file; give a folder"):
        me.match_many(_pairs(data, 1), tmp_path / "f", weights=data / "tiny.safetensors", **OPTS)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device='cuda': CUDA is not available here"):
        me.match_many(_pairs(data, 1), tmp_path / "out", weights=data / "tiny.safetensors", device="cuda", **OPTS)


def test_numpy_values_and_upper_case_names_give_the_plain_job(data, tmp_path):
    w = data / "tiny.safetensors"
    plain = me.match_many(_pairs(data, 1), tmp_path / "a", weights=w, **OPTS)
    odd = me.match_many(_pairs(data, 1), tmp_path / "b", weights=w, device="CPU", tier="AUTO", backend="Local",
                        **{**OPTS, "stride": np.int64(16), "radius": torch.tensor(8), "threads": np.int8(1)})
    assert odd["fingerprint"] == plain["fingerprint"] and odd["settings"] == plain["settings"]
    assert np.array_equal(read_result(tmp_path / "a" / "000000.npz")["pts1"],
                          read_result(tmp_path / "b" / "000000.npz")["pts1"])


# ----------------------------------------------------------------------------- the manifest is evidence


def _finished_folder(data, out: Path, stride: int = 16) -> dict:
    """A finished job of ``stride`` in ``out``; returns {result file: its bytes}."""
    me.match_many(_pairs(data, 3), out, weights=data / "tiny.safetensors", **{**OPTS, "stride": stride})
    return {p.name: p.read_bytes() for p in out.glob("*.npz")}


BROKEN = {  # what replaces manifest.json -> what the one line says about it
    "broken JSON": ('{"format": "mind_engine.batch/1", "pairs": [', "is not valid JSON"),
    "empty": ("", "manifest.json is empty"),
    "pairs not a list": ('{"pairs": "x"}', "is not a manifest of this job format"),
    "a list": ("[1, 2]", "it holds [1, 2], not a JSON object"),
    "a record without a key": (None, "its pairs[0] is {\"status\": \"ok\"}, not a record"),
    "settings not an object": (None, "its 'settings' is \"x\", not an object"),
    "not UTF-8": (b"\xff\xfe\x00", "manifest.json cannot be read"),
}


def _break(out: Path, how: str) -> None:
    text, _ = BROKEN[how]
    if text is None:
        man = _manifest(out)
        man.update({"a record without a key": {"pairs": [{"status": "ok"}]},
                    "settings not an object": {"settings": "x"}}[how])
        text = json.dumps(man)
    path = out / MANIFEST
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)


@pytest.mark.parametrize("how", list(BROKEN))
def test_a_broken_manifest_never_lets_other_settings_overwrite_results(how, data, tmp_path):
    before = _finished_folder(data, tmp_path)
    _break(tmp_path, how)
    broken = (tmp_path / MANIFEST).read_bytes()
    with pytest.raises(ValueError) as e:
        me.match_many(_pairs(data, 3), tmp_path, weights=data / "tiny.safetensors", **{**OPTS, "stride": 8})
    msg = str(e.value)
    assert "\n" not in msg and BROKEN[how][1] in msg and "3 result files of other settings" in msg, msg
    assert "restart=True (mind-engine: --restart)" in msg and str(tmp_path) in msg
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.npz")} == before  # nothing overwritten
    assert (tmp_path / MANIFEST).read_bytes() == broken  # nor the evidence


def test_a_broken_manifest_with_this_job_s_results_is_rebuilt_from_them(data, tmp_path):
    before = _finished_folder(data, tmp_path)
    _break(tmp_path, "broken JSON")
    man = me.match_many(_pairs(data, 4), tmp_path, weights=data / "tiny.safetensors", **OPTS)
    assert man["counts"] == {"ok": 4, "failed": 0, "resumed": 3} and "is not valid JSON" in man["recovered"]
    assert all((tmp_path / n).read_bytes() == b for n, b in before.items())
    assert _agrees_with_files(tmp_path)["state"] == "finished"


def test_results_without_a_manifest_are_evidence_too(data, tmp_path):
    before = _finished_folder(data, tmp_path)
    (tmp_path / MANIFEST).unlink()
    with pytest.raises(ValueError, match=r"has no manifest.json and holds 3 result files of other settings"):
        me.match_many(_pairs(data, 3), tmp_path, weights=data / "tiny.safetensors", **{**OPTS, "stride": 8})
    (tmp_path / "000000.npz").write_bytes(b"not a result")  # unreadable: nothing says whose it was
    with pytest.raises(ValueError, match=r"1 result file that cannot be read \(000000.npz\)"):
        me.match_many(_pairs(data, 3), tmp_path, weights=data / "tiny.safetensors", **OPTS)
    assert not (tmp_path / MANIFEST).exists() and (tmp_path / "000000.npz").read_bytes() == b"not a result"
    (tmp_path / "000000.npz").write_bytes(before["000000.npz"])
    man = me.match_many(_pairs(data, 3), tmp_path, weights=data / "tiny.safetensors", **OPTS)  # the same settings
    assert man["counts"]["resumed"] == 3 and "was missing" in man["recovered"]


def test_an_intact_manifest_does_not_vouch_for_results_of_another_job(data, tmp_path):
    _finished_folder(data, tmp_path / "a", stride=16)
    other = _finished_folder(data, tmp_path / "b", stride=8)
    (tmp_path / "a" / "000009.npz").write_bytes(other["000001.npz"])  # a stride-8 result in a stride-16 folder
    with pytest.raises(ValueError, match=r"other settings than its manifest says: 1 result file of other settings "
                                         r"or another model \(000009.npz\)"):
        me.match_many(_pairs(data, 3), tmp_path / "a", weights=data / "tiny.safetensors", **OPTS)
    with pytest.raises(ValueError, match=r"holds results of other settings \(stride was 16, now 8\)"):
        me.match_many(_pairs(data, 3), tmp_path / "a", weights=data / "tiny.safetensors", **{**OPTS, "stride": 8})


def test_restart_moves_the_earlier_files_aside_and_starts_over(data, tmp_path):
    before = _finished_folder(data, tmp_path)
    _break(tmp_path, "pairs not a list")
    man = me.match_many(_pairs(data, 2), tmp_path, weights=data / "tiny.safetensors", restart=True,
                        **{**OPTS, "stride": 8})
    assert man["counts"] == {"ok": 2, "failed": 0, "resumed": 0} and man["settings"]["stride"] == 8
    (aside,) = tmp_path.glob("replaced-*")
    assert man["restart"].endswith(str(aside))
    assert {p.name: p.read_bytes() for p in aside.glob("*.npz")} == before  # moved, not deleted
    assert (aside / MANIFEST).read_text() == '{"pairs": "x"}'
    _agrees_with_files(tmp_path)
    with pytest.raises(ValueError, match="restart must be True or False, got 'yes'"):
        me.match_many(_pairs(data, 1), tmp_path, weights=data / "tiny.safetensors", restart="yes", **OPTS)


def test_the_cli_refuses_a_broken_folder_in_one_line_and_restarts_on_request(data, tmp_path):
    before = _finished_folder(data, tmp_path / "out")
    (tmp_path / "out" / MANIFEST).write_text("{not json")
    argv = ["match-pairs", str(data / "four.txt"), "--out", str(tmp_path / "out"), "--weights",
            str(data / "tiny.safetensors"), "--stride", "8", "--radius", "8", "--threads", "1", "--no-progress"]
    proc = subprocess.run([sys.executable, "-m", "mind_engine", *argv], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("mind-engine match-pairs: error: ") and "is not valid JSON" in proc.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").glob("*.npz")} == before
    proc = subprocess.run([sys.executable, "-m", "mind_engine", *argv, "--restart"], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "4 pairs matched (0 of them by an earlier run)" in proc.stdout, proc.stderr
    assert len(list((tmp_path / "out").glob("replaced-*/*.npz"))) == 3
