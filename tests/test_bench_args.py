"""The bench scripts take the commands' argument layer (issue 40): what they cannot measure (a
gap under 1 or longer than the clip, a gap twice, a pickle named as weights, more threads than
cores) is refused in one line naming the option, exit 2, before any measurement; a pickle is never
unpickled."""
from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import interpolation, motion_probe, train_speed  # noqa: E402
from conftest import Evil  # noqa: E402


def _refused(main, argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines  # the one line, not argparse's usage before it
    err = lines[0]
    assert "error: " in err and message in err, err


@pytest.mark.parametrize("argv, message", [
    (["--gaps", "-1"], "--gaps must be a positive integer, got -1"),
    (["--gaps", "0"], "--gaps must be a positive integer, got 0"),
    (["--gaps", "1", "1"], "--gaps names 1 twice"),
    (["--gaps", "1.5"], "--gaps must be a positive integer, got 1.5"),
    (["--threads", "99999"], f"--threads must be an integer in 1..{os.cpu_count()}"),
    (["--every", "0"], "--every must be a positive integer"),
    (["--val-fraction", "1"], "--val-fraction must be a number in (0, 1)"),
])
def test_interpolation_refuses_what_it_cannot_measure(argv, message, tmp_path, capsys):
    _refused(interpolation.main, argv + ["--out", str(tmp_path / "x.json")], message, capsys)


def test_a_pickle_named_as_weights_is_refused_and_never_unpickled(tmp_path, capsys):
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(Evil()))
    for main in (interpolation.main, motion_probe.main):
        _refused(main, ["--weights", str(evil), "--out", str(tmp_path / "x.json")], f"--weights: {evil} is a", capsys)


def test_a_gap_longer_than_the_clip_is_refused(clip_dir, tmp_path, capsys):
    _refused(interpolation.main, ["--data", str(clip_dir), "--gaps", "1", "100", "--threads", "1", "--out",
                                  str(tmp_path / "x.json")], "--gaps 100: no clip's held-out frames hold", capsys)
    assert not (tmp_path / "x.json").exists()


def test_the_same_clip_twice_is_refused(clip_dir, tmp_path, capsys):
    _refused(interpolation.main, ["--data", str(clip_dir), str(clip_dir) + "/", "--out", str(tmp_path / "x.json")],
             "--data names", capsys)


def test_train_speed_refuses_too_many_threads(tmp_path, capsys):
    _refused(train_speed.main, ["--threads", "1", "99999", "--out", str(tmp_path / "x.json")], "--threads must be", capsys)
