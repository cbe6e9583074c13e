"""The training command as a newcomer meets it: the recipe's run with its start-up summary, frames
smaller than the crop refused, a training checkpoint given to load_model, verified checkpoints
(flipped bytes, truncated, empty, NaN), a stop at the first non-finite loss, one run per folder."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from mind_engine.batch.lock import FolderBusyError, FolderLock
from mind_engine.data.sources import Clip
from mind_engine.data.video import VideoTriplets
from mind_engine.training import step as step_module
from mind_engine.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mind_engine.training.loop import main, run_cli
from mind_engine.training.report import speed_line
from mind_engine.weights import CheckpointError as WeightsError
from mind_engine.weights import load_model

# tiny and fast, the recipe otherwise (no checkpoint choice: the probe takes ~20 s)
FAST = ["--size", "32x32", "--batch-size", "2", "--threads", "1", "--no-progress", "--val-size", "2",
        "--match-val-every", "0"]
SMALL_NET = ["--widths", "8,8,8,8,8"]


@pytest.fixture(scope="module")
def trained(clip_dir, tmp_path_factory):
    """A real tiny run's folder (last.pt at step 3) and its result."""
    d = tmp_path_factory.mktemp("run")
    out = main(FAST + SMALL_NET + ["--data", str(clip_dir), "--steps", "3", "--val-every", "0",
                                   "--ckpt-dir", str(d / "ck")])
    return d / "ck", out


def _copy(trained, tmp_path):
    folder = tmp_path / "ck"
    shutil.copytree(trained[0], folder)
    (folder / ".mind_engine.lock").unlink(missing_ok=True)
    return folder


def test_the_recipe_runs_with_a_summary_and_a_speed_line(clip_dir, tmp_path, capsys):
    out = main(FAST + ["--data", str(clip_dir), "--steps", "3", "--ckpt-dir", str(tmp_path)])
    err = capsys.readouterr().err
    summary = err[err.index("mind-engine train:"):]
    for part in ("1 clip: ", "16 frames of 96x64, 13 for training, 3 held out", "gap 1: 11", "gap 4: 5",
                 "validation: 2 fixed triplets at gap 1", "50 % moved stills (--warp, up to 12 px", "50 % video",
                 "1,132,259 parameters", "the bundled default model", "cosine: lr 0.0002, warm-up 0 steps",
                 "clipped to 0.5", "eps 0.01", "device     cpu, 1 thread, bf16 autocast"):
        assert part in summary, part
    assert err.count("mind-engine train:") == 1  # one block, once
    assert "speed: " in err and "steps/s" in err and "measured over 2 steps" in err
    assert out["step"] == 3 and len(out["losses"]) == 3


def test_progress_off_a_terminal_is_whole_lines(clip_dir, tmp_path, capsys):
    fast = [a for a in FAST if a != "--no-progress"]
    main(fast + SMALL_NET + ["--data", str(clip_dir), "--steps", "2", "--val-every", "0", "--ckpt-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert "\r" not in err and "train: 2/2 step" in err


def test_a_short_fine_tune_checks_matching_at_the_end_and_says_what_it_exported(clip_dir, tmp_path, capsys):
    """A 3-step run: a line before any work, the checks' protocol named at step 0, checks scaled to
    the run (every 3 // 2 steps) and at the end, and an export line that says which weights (the
    last, finished) and their scores beside the best's."""
    fast = [a for a in FAST if a not in ("--match-val-every", "0")]
    out = main(fast + ["--data", str(clip_dir), "--steps", "3", "--select", "match", "--match-val-pairs", "1",
                       "--match-val-size", "64x64", "--ckpt-dir", str(tmp_path / "ck"),
                       "--export", str(tmp_path / "m.safetensors")])
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0].startswith("preparing the data (") and "the validation triplets" in lines[0]
    assert [r["step"] for r in out["match_history"]] == [0, 1, 2, 3]  # every 1 (3 // 2), the end
    assert "checks     matching on 1 layered pair (64x64, one scale) at the start, every 1 steps (the recipe's, " \
           "scaled to --steps) and at the end; best.safetensors chosen by matching Accuracy@10" in err
    assert "warm-up 0 steps (the recipe's, scaled to --steps)" in err
    step0 = next(line for line in lines if line.startswith("step 0: matching ("))
    assert "1 layered validation pair 64x64, one scale, stride 8, radius 32; not bench/accuracy.py's" in step0
    (export,) = [line for line in lines if line.startswith("exported ")]
    assert f"exported {tmp_path / 'm.safetensors'}: the last weights, step 3 of 3 (the end of the run); matching " \
           "at step 3: Acc@10 " in export
    best = out["match_history"][-1]["best_step"]
    assert ("also the best of the run's checks by Acc@10" in export) == (best == 3), export
    assert best == 3 or f"the best by Acc@10 were step {best}'s" in export and "best.safetensors" in export


def test_an_export_stopped_by_max_seconds_says_it_is_unfinished(clip_dir, tmp_path, capsys):
    main(FAST + SMALL_NET + ["--data", str(clip_dir), "--steps", "5", "--val-every", "0", "--max-seconds", "1e-9",
                             "--ckpt-dir", str(tmp_path / "ck"), "--export", str(tmp_path / "m.safetensors")])
    (export,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("exported ")]
    assert "the last weights, step 0 of 5 (an unfinished run, stopped by --max-seconds); no match check" in export


def test_speed_line_says_how_long_the_rest_takes():
    line = speed_line(10, 3.8, 1990, 2000)
    assert line.startswith("speed: 2.63 steps/s (0.38 s/step")
    assert "the 1990 steps left, to step 2000, take about 13 min" in line


def test_frames_smaller_than_the_crop_are_refused_never_upscaled(clip_dir, tmp_path, capsys):
    frames = np.zeros((6, 144, 176, 3), np.uint8)
    with pytest.raises(ValueError, match=r"clip 'carphone' has 176x144 frames, smaller than the 384x128 crop "
                                         r"\(--size\); frames are never upscaled: pass --size 160x128"):
        VideoTriplets([Clip("carphone", frames)], (384, 128))
    args = FAST + ["--data", str(clip_dir), "--size", "128x64", "--steps", "1", "--ckpt-dir", str(tmp_path)]
    assert run_cli(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("mind-engine train: error: clip 'clip") and "96x64 frames" in err[-1]
    assert "pass --size 96x64" in err[-1]


def test_load_model_on_a_training_checkpoint_says_how_to_export(trained, tmp_path):
    folder, out = trained
    with pytest.raises(WeightsError, match=r"is a training checkpoint \(last.pt\), not a weights file; export its "
                                           r"weights with `mind-engine train --resume .*last.pt --export-only"):
        load_model(folder / "last.pt")
    w = tmp_path / "w.safetensors"
    assert run_cli(["--resume", str(folder / "last.pt"), "--export-only", "--export", str(w)]) == 0
    got, want = load_model(w).state_dict(), out["model"].state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)


@pytest.mark.parametrize("damage", ["flip 8 bytes", "truncate", "empty"])
def test_a_damaged_checkpoint_is_refused_in_one_line(trained, tmp_path, damage, clip_dir, capsys):
    folder = _copy(trained, tmp_path)
    data = bytearray((folder / "last.pt").read_bytes())
    if damage == "flip 8 bytes":
        middle = len(data) // 2
        data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    elif damage == "truncate":
        data = data[:len(data) // 2]
    else:
        data = b""
    (folder / "last.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_checkpoint(folder / "last.pt")
    args = FAST + SMALL_NET + ["--data", str(clip_dir), "--steps", "5", "--ckpt-dir", str(folder), "--resume"]
    assert run_cli(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in err if "error" in line]) == 1 and "Traceback" not in "".join(err)
    assert err[-1].startswith(f"mind-engine train: error: {folder / 'last.pt'}")
    assert {"flip 8 bytes": "SHA-256", "truncate": "truncated or corrupted", "empty": "empty"}[damage] in err[-1]
    assert (folder / "last.pt").read_bytes() == bytes(data)  # nothing was overwritten


def test_non_finite_weights_are_never_written_nor_resumed(trained, tmp_path, clip_dir):
    folder = _copy(trained, tmp_path)
    state = load_checkpoint(folder / "last.pt")
    assert state["step"] == 3
    name = next(iter(state["model"]))
    state["model"][name][0] = float("nan")
    with pytest.raises(CheckpointError, match=f"NaN or inf in model.{name}"):
        save_checkpoint(folder / "last.pt", state)
    torch.save(state, folder / "last.pt")  # as a file without a digest (before 0.3) would hold it
    with pytest.raises(CheckpointError, match="holds NaN or inf in model"):
        main(FAST + SMALL_NET + ["--data", str(clip_dir), "--steps", "5", "--ckpt-dir", str(folder), "--resume"])


def test_a_checkpoint_without_a_digest_still_resumes(trained, tmp_path, clip_dir):
    folder = _copy(trained, tmp_path)
    torch.save(load_checkpoint(folder / "last.pt"), folder / "last.pt")  # the format before 0.3
    out = main(FAST + SMALL_NET + ["--data", str(clip_dir), "--steps", "4", "--val-every", "0",
                                   "--ckpt-dir", str(folder), "--resume"])
    assert out["step"] == 4 and len(out["losses"]) == 1


def test_training_stops_at_the_first_non_finite_loss(clip_dir, tmp_path, monkeypatch, capsys):
    calls = []
    real = step_module.charbonnier

    def poisoned(pred, target, eps=0.1):
        calls.append(1)
        loss = real(pred, target, eps)
        return loss * float("nan") if len(calls) > 2 * 3 else loss  # two calls a step: NaN from step 4

    monkeypatch.setattr(step_module, "charbonnier", poisoned)
    w = tmp_path / "w.safetensors"
    args = FAST + SMALL_NET + ["--data", str(clip_dir), "--steps", "8", "--ckpt-every", "1", "--val-every", "0",
                               "--ckpt-dir", str(tmp_path / "ck"), "--export", str(w)]
    assert run_cli(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("mind-engine train: error: step 4: the loss is nan")
    assert load_checkpoint(tmp_path / "ck" / "last.pt")["step"] == 3  # finite, and never overwritten with NaN
    assert not w.exists()


def test_a_huge_learning_rate_is_refused_in_one_line(clip_dir, tmp_path, capsys):
    """Before 0.3.0's issue 40 it trained (to a NaN loss, or to weights of 1e30 exported with exit 0)."""
    with pytest.raises(SystemExit) as e:
        run_cli(FAST + SMALL_NET + ["--data", str(clip_dir), "--steps", "20", "--lr", "1e30", "--min-lr", "0",
                                    "--ckpt-dir", str(tmp_path)])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "mind-engine train: error: --lr must be a number in (0, 1], got 1e+30"
    assert not (tmp_path / "last.pt").exists()


def test_one_run_per_checkpoint_folder(clip_dir, tmp_path):
    folder = tmp_path / "ck"
    folder.mkdir()
    with FolderLock(folder):  # another run holds the folder
        with pytest.raises(FolderBusyError, match=rf"--ckpt-dir {folder} is in use by another job \(pid "
                                                  rf"{os.getpid()} on "):
            main(FAST + SMALL_NET + ["--data", str(clip_dir), "--steps", "1", "--ckpt-dir", str(folder)])
    out = main(FAST + SMALL_NET + ["--data", str(clip_dir), "--steps", "1", "--val-every", "0",
                                   "--ckpt-dir", str(folder)])
    assert out["step"] == 1  # free again: the folder is the next run's
