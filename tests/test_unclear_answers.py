"""Issue 40's unclear answers, each now answered right or refused in one line naming the argument:
pickles as models, blank models, text as query coordinates, a negative forward-backward tolerance,
list options naming a thing twice or an empty item, an absurd learning rate, case-insensitive names
on the command line, tab- and space-separated .csv pair lists, a forged manifest's refusal, and the
version, from one source."""
from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import mind_engine as me
from mind_engine.batch import read_pair_list
from mind_engine.cli import main as cli
from mind_engine.training.cli import parse_args
from mind_engine.weights import CheckpointError

from conftest import SMALL, Evil, write_batch_inputs

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("unclear")
    write_batch_inputs(d, 2, 0)
    return d


def test_a_pickle_or_a_state_dict_is_called_what_it_is_and_never_unpickled(tmp_path, pair):
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Evil()))
    torch.save(me.MindNet(**SMALL).state_dict(), tmp_path / "sd.pt")
    torch.save({"x": Evil()}, tmp_path / "evil_zip.pt")
    for name in ("evil.pt", "sd.pt", "evil_zip.pt"):
        with pytest.raises(CheckpointError, match=r"is a pickle \(torch.save\) file, not a safetensors weights file; "
                                                  r"mind_engine never unpickles"):
            me.match(*pair, model=tmp_path / name)


def test_a_blank_model_is_refused(pair):
    blank = me.MindNet(**SMALL)
    with torch.no_grad():
        for p in blank.parameters():
            p.zero_()
    with pytest.raises(ValueError, match="model holds only zero weights, a blank model"):
        me.match(*pair, model=blank, stride=16, radius=8)


@pytest.mark.parametrize("queries", [[("5", "5")], np.array([["5", "5"]]), [(b"5", b"5")]])
def test_text_is_not_a_query_coordinate(pair, net, queries):
    with pytest.raises(ValueError, match="queries must be an .N, 2. array of numeric"):
        me.match(*pair, model=net, queries=queries, radius=8)


def test_a_negative_forward_backward_tolerance_is_refused(pair, net):
    with pytest.raises(ValueError, match=r"tol must be a number >= 0, got -1"):
        me.match_fb(*pair, model=net, stride=16, radius=8, tol=-1)


@pytest.mark.parametrize("option, value, message", [
    ("--gaps", "1,,2", "expected comma-separated numbers, got '1,,2'"),
    ("--gaps", "1,1", "--gaps names 1 twice; give each once"),
    ("--lr", "1e30", "--lr must be a number in (0, 1], got 1e+30"),
])
def test_training_list_options_and_the_learning_rate(option, value, message, capsys):
    with pytest.raises(SystemExit):
        parse_args([f"{option}={value}"])
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_the_same_training_data_twice_is_refused(d, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--data", str(d), str(d) + "/."])
    assert f"--data names '{d}/.' twice (as '{d}' too); give each once" in capsys.readouterr().err


def test_a_run_with_nothing_to_train_says_so(clip_dir, tmp_path, capsys):
    from test_train import TINY

    from mind_engine.training.loop import run_cli

    assert run_cli(TINY + ["--data", str(clip_dir), "--steps", "2", "--stop-at", "0", "--ckpt-dir", str(tmp_path)]) == 0
    assert "nothing to train: the run is at step 0 and --stop-at is 0" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [["--tier", "T0"], ["--precision", "FP32"], ["--tier", "Auto", "--precision", "Fp32"]])
def test_names_are_case_insensitive_on_the_command_line(d, flags, capsys):
    argv = ["match", str(d / "0.png"), str(d / "1.png"), "--weights", str(d / "tiny.safetensors"), "--stride", "32",
            "--radius", "4", "--levels", "1", *flags]
    assert cli(argv) == 0, capsys.readouterr().err


@pytest.mark.parametrize("sep", ["\t", " ", "  ", ","])
def test_a_csv_pair_list_takes_tabs_and_spaces_as_its_help_says(tmp_path, sep):
    (tmp_path / "p.csv").write_text(f"img1{sep}img3\na.png{sep}b.png\n")
    (p,) = read_pair_list(tmp_path / "p.csv")
    assert p.error is None and (p.img1, p.img3) == (str(tmp_path / "a.png"), str(tmp_path / "b.png"))


def test_a_forged_manifest_s_refusal_names_what_differs(d, tmp_path):
    pairs = [(d / "0.png", d / "1.png")]
    opts = dict(weights=d / "tiny.safetensors", stride=32, radius=4, levels=1, threads=1, progress=False)
    me.match_many(pairs, tmp_path, **opts)
    doc = json.loads((tmp_path / "manifest.json").read_text())
    real, doc["fingerprint"] = doc["fingerprint"], "0" * len(doc["fingerprint"])
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError) as e:
        me.match_many(pairs, tmp_path, **opts)
    msg = str(e.value)
    assert "{}" not in msg and f"its fingerprint '{'0' * len(real)}' is not this job's '{real}'" in msg, msg


def test_the_version_has_one_source(capsys):
    changelog = (ROOT / "CHANGELOG.md").read_text()
    top = re.search(r"^## (\d+\.\d+\.\d+)", changelog, re.M).group(1)
    assert me.__version__ == top and top.startswith("0.3.")
    assert 'version = { attr = "mind_engine.version.__version__" }' in (ROOT / "pyproject.toml").read_text()
    assert cli(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mind-engine {top}"
    from mind_engine.batch.job import versions

    assert versions("local")["mind_engine"] == top
