"""DistributedDataParallel training: two CPU ranks over gloo under torchrun, one launch.

The launch trains three runs (each creating and destroying its process group) in each rank: N steps in one go, N/2 steps, and a resume to N. It
must exit 0 (both ranks shut down cleanly), ranks must end with identical weights although they
drew different batches (so their gradients were averaged), and the resumed run must equal the
uninterrupted one bit for bit.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--widths", "4,4,4,4,4", "--size", "64x32", "--batch-size", "2", "--threads", "1", "--no-progress",
        "--val-size", "2", "--val-every", "0", "--ckpt-every", "1", "--match-val-every", "0"]

JOB = """
import os, socket, sys, torch
from torch.distributed import TCPStore
from mind_engine.training.loop import main

# Each main() creates and destroys its process group. torch names a re-created default group as
# before, so on the same store it would read the destroyed group's keys: give each run a fresh
# store (hosted by rank 0 on a free port, announced through torchrun's agent store).
agent = TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False)
os.environ["TORCHELASTIC_USE_AGENT_STORE"] = "False"


def train(args, i):
    if os.environ["RANK"] == "0":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            agent.set(f"run{i}", str(s.getsockname()[1]))
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", agent.get(f"run{i}").decode()
    return main(args)


out, common = sys.argv[1], sys.argv[2:]
full = train(common + ["--steps", "4", "--ckpt-dir", f"{out}/full"], 0)
half = train(common + ["--steps", "4", "--stop-at", "2", "--ckpt-dir", f"{out}/split"], 1)  # the same schedule
rest = train(common + ["--steps", "4", "--ckpt-dir", f"{out}/split", "--resume"], 2)
torch.save({"full": full["model"].state_dict(), "resumed": rest["model"].state_dict(),
            "losses": full["losses"], "split_losses": half["losses"] + rest["losses"]},
           f"{out}/rank{os.environ['RANK']}.pt")
"""


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """A small clip: a smooth random texture translating by 2 px per frame."""
    import imageio.v3 as iio

    d = tmp_path_factory.mktemp("ddp_clip")
    rng = np.random.default_rng(0)
    base = torch.nn.functional.avg_pool2d(torch.from_numpy(rng.random((1, 3, 80, 140))), 5, 1).numpy()[0]
    img = (base.transpose(1, 2, 0) * 255).astype(np.uint8)
    for t in range(16):
        iio.imwrite(d / f"{t:03d}.png", img[4:68, 2 * t:2 * t + 96])
    return d


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun is not installed")
def test_two_ranks_average_gradients_see_different_batches_and_resume_exactly(frames, tmp_path):
    job = tmp_path / "job.py"
    job.write_text(JOB)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(job), str(tmp_path), "--data", str(frames), *TINY]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both ranks, not torchrun alone
        _, err = proc.communicate()
        pytest.fail(f"two-rank training did not finish in 300 s:\n{err[-3000:]}")
    assert proc.returncode == 0, err[-3000:]  # no rank aborted, at any of the three shutdowns
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for key in ("full", "resumed"):
        assert all(torch.equal(r0[key][k], r1[key][k]) for k in r0[key])  # gradients were averaged
    assert r0["losses"] != r1["losses"]  # the ranks drew different batches
    assert r0["losses"] == r0["split_losses"] and r1["losses"] == r1["split_losses"]  # resume, step by step
    assert all(torch.equal(r0["full"][k], r0["resumed"][k]) for k in r0["full"])  # and bit for bit
    from mind_engine.training.loop import build_model as _model
    from mind_engine.training.cli import parse_args

    init = _model(parse_args(TINY)).state_dict()
    assert not all(torch.equal(init[k], r0["full"][k]) for k in init)  # training moved the weights
