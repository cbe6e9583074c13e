"""Files it writes (issue 40): no input destroyed through a hard or symbolic link, no link planted at
a temporary, lock or log name followed, a full disk one line naming the file and the free space
with the old file intact and no temporary left, a killed run's temporaries cleaned; every writer."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import mind_engine as me
from mind_engine import safe_write
from mind_engine.batch.lock import FolderLock
from mind_engine.batch.store import Manifest, write_result
from mind_engine.cli import main as cli
from mind_engine.images import write_image
from mind_engine.safe_write import WriteError, write_bytes, write_json
from mind_engine.training.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(encoder=(4, 4, 4, 4, 4), decoder=(4, 4, 4, 4, 4))


def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def _only_old(folder: Path, name: str, old: bytes) -> None:
    """``folder/name`` still holds ``old`` and no temporary is left beside it."""
    assert (folder / name).read_bytes() == old
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def pngs(tmp_path):
    rng = np.random.default_rng(0)
    for n in ("a.png", "b.png"):
        write_image(tmp_path / n, rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    return tmp_path


# ----------------------------------------------------------------------------- inputs through links


@pytest.mark.parametrize("link", [os.link, os.symlink])
@pytest.mark.parametrize("command", [["match", "--stride", "16", "--radius", "8"], ["interpolate"]])
def test_an_output_linked_to_an_input_is_refused_and_the_input_kept(pngs, capsys, link, command):
    link(pngs / "a.png", pngs / "out.png")
    before = (pngs / "a.png").read_bytes()
    argv = [command[0], str(pngs / "a.png"), str(pngs / "b.png"), *command[1:], "--out", str(pngs / "out.png")]
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--out" in err and "is also img1" in err, err
    assert (pngs / "a.png").read_bytes() == before


def test_write_bytes_refuses_an_input_by_inode_and_replaces_a_link_without_touching_its_target(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.link(victim, tmp_path / "hard.txt")
    with pytest.raises(ValueError, match="same file as img1"):
        write_bytes(tmp_path / "hard.txt", b"x", inputs={"img1": victim})
    os.symlink(victim, tmp_path / "soft.txt")
    write_bytes(tmp_path / "soft.txt", b"new")  # not an input: the link is replaced, never followed
    assert victim.read_text() == "precious" and not (tmp_path / "soft.txt").is_symlink()
    write_bytes(tmp_path / "hard.txt", b"new")  # a hard link is replaced, the other name keeps the old bytes
    assert victim.read_text() == "precious"


# ----------------------------------------------------------------------------- planted links


def test_a_link_planted_at_the_lock_name_is_refused_and_its_target_kept(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for plant in (os.symlink, os.link):
        out = tmp_path / plant.__name__
        out.mkdir()
        plant(victim, out / ".mind_engine.lock")
        with pytest.raises(WriteError, match="never written through a link"):
            FolderLock(out).__enter__()
        assert victim.read_text() == "precious"


def test_match_pairs_refuses_a_planted_lock_link_in_one_line(tmp_path, capsys):
    from conftest import write_batch_inputs

    write_batch_inputs(tmp_path, 2, 0)
    (tmp_path / "one.csv").write_text(f"{tmp_path / '0.png'},{tmp_path / '1.png'}\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "victim.txt").write_text("precious")
    os.symlink(tmp_path / "victim.txt", tmp_path / "out" / ".mind_engine.lock")
    argv = ["match-pairs", str(tmp_path / "one.csv"), "--out", str(tmp_path / "out"), "--weights",
            str(tmp_path / "tiny.safetensors"), "--stride", "16", "--radius", "8"]
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and ".mind_engine.lock is a symbolic link" in err, err
    assert (tmp_path / "victim.txt").read_text() == "precious"


def test_a_link_planted_at_a_temporary_name_is_never_followed(tmp_path, monkeypatch):
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"precious")
    names = iter(["planted00", "fresh000"])
    monkeypatch.setattr(safe_write.secrets, "token_hex", lambda n: next(names))
    planted = tmp_path / f".last.pt.{safe_write._HOST}.{os.getpid()}.planted00.tmp"
    os.symlink(victim, planted)
    os.symlink(victim, tmp_path / f".last.pt.{os.getpid()}.tmp")  # where earlier versions wrote their temporary
    save_checkpoint(tmp_path / "last.pt", {"step": 1, "model": {"w": torch.ones(3)}})
    assert victim.read_bytes() == b"precious"
    assert (tmp_path / "last.pt").is_file() and not (tmp_path / "last.pt").is_symlink()
    assert planted.is_symlink()  # left alone: this process is alive


def test_the_training_log_is_never_appended_through_a_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.symlink(victim, tmp_path / "log.jsonl")
    with pytest.raises(WriteError, match="symbolic link"):
        safe_write.append_line(tmp_path / "log.jsonl", "{}")
    assert victim.read_text() == "precious"


# ----------------------------------------------------------------------------- killed runs


def test_a_killed_run_s_temporaries_are_cleaned_and_a_live_one_s_kept(tmp_path):
    dead = _dead_pid()
    stale = [tmp_path / f".last.pt.{dead}.tmp", tmp_path / f".last.pt.{safe_write._HOST}.{dead}.0badc0de.tmp"]
    for p in stale:
        p.write_bytes(b"\0" * 1000)
    other_host = tmp_path / f".last.pt.ffffffff.{dead}.0badc0de.tmp"  # another host's: it may be writing
    live = tmp_path / f".last.pt.{os.getpid()}.tmp"
    for p in (other_host, live):
        p.write_bytes(b"x")
    save_checkpoint(tmp_path / "last.pt", {"step": 1})
    assert not any(p.exists() for p in stale)
    assert other_host.exists() and live.exists()


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


# ----------------------------------------------------------------------------- full disk, every writer


def _writers(tmp_path):
    """name -> (file name, a call that writes it)."""
    from mind_engine.evaluation.figures import draw_matches
    from mind_engine.evaluation.pairs import write_flo, write_kitti_flow

    img = np.zeros((32, 32, 3), np.uint8)
    flow = np.zeros((8, 8, 2), np.float32)
    cols = {k: np.zeros((1, 2), np.float32) for k in ("pts1", "pts3", "query", "pts1_raw", "pts3_raw")}
    cols.update({k: np.zeros(1, np.float32) for k in ("score", "score1", "score3", "texture")})
    cols.update(refinement=np.zeros(1, np.int8), consistent=np.ones(1, bool))
    meta = dict(key="k", img1="a", img3="b", fingerprint="f", width=1, height=1, seconds_load=0.0, seconds_match=0.0)
    header = {"format": "mind_engine.batch/1", "fingerprint": "f", "settings": {}, "model": {"sha256": "s"}}
    return {
        "json": ("x.json", lambda: write_json(tmp_path / "x.json", {"a": 1})),
        "image": ("x.png", lambda: write_image(tmp_path / "x.png", img)),
        "figure": ("fig.png", lambda: draw_matches(img, img, np.zeros((1, 2)), np.zeros((1, 2)), tmp_path / "fig.png")),
        "flo": ("x.flo", lambda: write_flo(tmp_path / "x.flo", flow)),
        "kitti": ("k.png", lambda: write_kitti_flow(tmp_path / "k.png", flow)),
        "weights": ("w.safetensors", lambda: me.save_model(me.MindNet(**TINY), tmp_path / "w.safetensors")),
        "checkpoint": ("last.pt", lambda: save_checkpoint(tmp_path / "last.pt", {"step": 1})),
        "result": ("k.npz", lambda: write_result(tmp_path, "k", cols, meta)),
        "manifest": ("manifest.json", lambda: Manifest(tmp_path, header).write("running")),
    }


@pytest.mark.parametrize("writer", ["json", "image", "figure", "flo", "kitti", "weights", "checkpoint", "result",
                                    "manifest"])
def test_a_full_disk_is_one_line_naming_the_file_and_the_free_space_and_the_old_file_stays(tmp_path, monkeypatch,
                                                                                             writer):
    name, write = _writers(tmp_path)[writer]
    (tmp_path / name).write_bytes(b"old")
    monkeypatch.setattr(os, "fsync", _enospc)
    with pytest.raises(WriteError) as e:
        write()
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / name) in msg and "disk is full" in msg and " free in " in msg, msg
    assert "old file is kept" in msg
    _only_old(tmp_path, name, b"old")


def test_a_full_log_disk_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "write", _enospc)
    with pytest.raises(WriteError, match="log.jsonl could not be written: the disk is full"):
        safe_write.append_line(tmp_path / "log.jsonl", "{}")


def test_match_over_existing_files_on_a_full_disk_keeps_them(pngs, capsys, monkeypatch):
    for n in ("m.json", "m.png"):
        (pngs / n).write_bytes(b"old")
    monkeypatch.setattr(os, "fsync", _enospc)
    argv = ["match", str(pngs / "a.png"), str(pngs / "b.png"), "--stride", "16", "--radius", "8", "--levels", "1",
            "--json", str(pngs / "m.json"), "--out", str(pngs / "m.png")]
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("mind-engine match: error: ") and "m.json could not be written: the disk is full" in err
    for n in ("m.json", "m.png"):
        _only_old(pngs, n, b"old")


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs (root in a VM may mount one); skipped where it cannot be mounted."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                                                       capture_output=True).returncode != 0:
        pytest.skip("a 1 MB tmpfs cannot be mounted here (needs root); the ENOSPC tests above cover the writers")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_a_real_full_disk_keeps_the_old_file_and_leaves_no_temporary(small_disk):
    write_bytes(small_disk / "big.bin", b"o" * 400_000)
    with pytest.raises(WriteError, match=r"big.bin could not be written: the disk is full \(.* free in .*, 700.0 KB"):
        write_bytes(small_disk / "big.bin", b"n" * 700_000)
    _only_old(small_disk, "big.bin", b"o" * 400_000)
    write_bytes(small_disk / "big.bin", b"n" * 500_000)  # the failed temporary's space is free again


def test_training_on_a_full_disk_stops_in_one_line_and_keeps_its_last_checkpoint(small_disk, clip_dir, capsys):
    from test_train import TINY as TRAIN

    from mind_engine.training.checkpoint import load_checkpoint
    from mind_engine.training.loop import run_cli

    argv = TRAIN + ["--data", str(clip_dir), "--ckpt-dir", str(small_disk / "ck")]
    assert run_cli(argv + ["--steps", "2"]) == 0
    old = (small_disk / "ck" / "last.pt").read_bytes()
    free = shutil.disk_usage(small_disk).free
    (small_disk / "filler").write_bytes(b"\0" * (free - len(old) // 2))
    capsys.readouterr()
    assert run_cli(argv + ["--steps", "4", "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("mind-engine train: error: training stopped at step 4: ") and "disk is full" in err, err
    _only_old(small_disk / "ck", "last.pt", old)
    assert load_checkpoint(small_disk / "ck" / "last.pt")["step"] == 2


def test_training_outputs_are_never_its_inputs(tmp_path, capsys):
    from mind_engine.training.cli import parse_args

    me.save_model(me.MindNet(**TINY), tmp_path / "init.safetensors")
    os.link(tmp_path / "init.safetensors", tmp_path / "out.safetensors")
    (tmp_path / "ck").mkdir()
    for argv, said in ((["--init", str(tmp_path / "init.safetensors"), "--export", str(tmp_path / "out.safetensors")],
                        "is also --init"),
                       (["--export", str(tmp_path / "ck" / "best.safetensors")], "is also --ckpt-dir's best weights"),
                       (["--log", str(tmp_path / "ck" / "last.pt")], "is also --ckpt-dir's checkpoint")):
        with pytest.raises(SystemExit):
            parse_args(argv + ["--ckpt-dir", str(tmp_path / "ck")])
        assert said in capsys.readouterr().err.strip().splitlines()[-1]


def test_a_folder_is_searched_for_stale_temporaries_once_per_process(tmp_path, monkeypatch):
    calls = []
    listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: calls.append(p) or listdir(p))
    for i in range(5):  # a batch folder of many results is not listed again for each
        write_bytes(tmp_path / f"{i}.npz", b"x")
    assert calls == [tmp_path]
