"""The training command's options: the recipe's defaults (one table), help with every default, and
every option range-checked through the argument layer, named in a one-line refusal (exit 2)."""
from __future__ import annotations

import argparse
import os

import pytest

from mind_engine.cliargs import HelpFormatter
from mind_engine.training.cli import build_parser, parse_args
from mind_engine.training.recipe import RECIPE
from mind_engine.weights import DEFAULT_WEIGHTS, read_checkpoint


def test_the_defaults_are_the_recipe_s():
    a = parse_args([])
    for key, value in RECIPE.items():
        if key == "init":
            continue
        assert getattr(a, key) == value, key
    assert a.init == str(DEFAULT_WEIGHTS)  # --init default unless --widths is given ...
    bundled = read_checkpoint(DEFAULT_WEIGHTS)[0]
    assert a.widths == (bundled.encoder, bundled.decoder) and a.skips == bundled.skips  # ... with its widths
    xavier = parse_args(["--widths", "8,8,8,8,8"])
    assert xavier.init is None and xavier.widths == ((8,) * 5, (8,) * 5)  # --widths alone: Xavier init


def test_every_option_shows_its_default_and_says_what_it_does():
    p = build_parser()
    text = p.format_help()
    shown = HelpFormatter(p.prog)
    for action in p._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{action.option_strings} has no help"
        if action.nargs != 0:  # flags have no default to show
            assert "default" in shown._get_help_string(action).lower(), action.option_strings
    for option in ("--batch-size", "--lr", "--min-lr", "--seed", "--steps", "--ckpt-dir", "--val-every",
                   "--ckpt-every"):
        assert option in text
    eps = next(a for a in p._actions if "--eps" in a.option_strings).help
    assert "[0, 1]" in eps and "2.55 grey levels" in eps


# option, value, what the one-line refusal must say
REFUSED = [
    ("--steps", "-5", "--steps must be a positive integer, got -5"),
    ("--steps", "0", "--steps must be a positive integer, got 0"),
    ("--batch-size", "0", "--batch-size must be a positive integer, got 0"),
    ("--batch-size", "2.5", "--batch-size must be a positive integer, got 2.5"),
    ("--val-size", "0", "--val-size must be a positive integer"),
    ("--match-val-pairs", "0", "--match-val-pairs must be a positive integer"),
    ("--lr", "inf", "--lr must be a number in (0, 1], got inf"),
    ("--lr", "0", "--lr must be a number in (0, 1], got 0"),
    ("--lr", "nan", "--lr must be a number in (0, 1]"),
    ("--min-lr", "-1e-5", "--min-lr must be a number >= 0"),
    ("--min-lr", "1e-3", "--min-lr must be at most --lr"),
    ("--eps", "-1", "--eps must be a number > 0, got -1"),
    ("--eps", "0", "--eps must be a number > 0, got 0"),
    ("--clip-grad", "-1", "--clip-grad must be a number > 0, got -1"),
    ("--clip-grad", "0", "--clip-grad must be a number > 0, got 0"),
    ("--val-fraction", "1.5", "--val-fraction must be a number in (0, 1), got 1.5"),
    ("--val-fraction", "0", "--val-fraction must be a number in (0, 1), got 0"),
    ("--warp", "1.5", "--warp must be a number in [0, 1], got 1.5"),
    ("--synthetic", "-0.1", "--synthetic must be a number in [0, 1]"),
    ("--layered", "2", "--layered must be a number in [0, 1]"),
    ("--warp-log-share", "1.1", "--warp-log-share must be a number in [0, 1]"),
    ("--warp-noise", "-1", "--warp-noise must be a number in [0, 1]"),
    ("--warp-linear", "1", "--warp-linear must be a number in [0, 1), got 1"),
    ("--warp-layers", "-1", "--warp-layers must be a non-negative integer"),
    ("--warp-max-motion", "0", "--warp-max-motion must be a number > 0"),
    ("--max-motion", "-3", "--max-motion must be a number > 0"),
    ("--layered-max-motion", "inf", "--layered-max-motion must be a number > 0"),
    ("--gaps", "0,1", "--gaps must be comma-separated integers >= 1, got '0,1'"),
    ("--gaps", "1,1.5", "--gaps must be comma-separated integers >= 1"),
    ("--gaps", ",", "--gaps must name at least one frame spacing"),
    ("--val-gap", "0", "--val-gap must be a positive integer"),
    ("--warmup", "-1", "--warmup must be a non-negative integer, got -1"),
    ("--hold", "1.5", "--hold must be a number in [0, 1], got 1.5"),
    ("--lr-factor", "1", "--lr-factor must be a number in (0, 1), got 1"),
    ("--lr-patience", "-1", "--lr-patience must be a non-negative integer"),
    ("--threads", "0", "--threads must be an integer in 1.."),
    ("--threads", "99999", "--threads must be an integer in 1.."),
    ("--threads", "-1", "--threads must be an integer in 1.."),
    ("--seed", "-1", "--seed must be a non-negative integer"),
    ("--stop-at", "-1", "--stop-at must be a non-negative integer"),
    ("--max-seconds", "0", "--max-seconds must be a number > 0"),
    ("--val-every", "-1", "--val-every must be a non-negative integer"),
    ("--match-val-every", "-1", "--match-val-every must be a non-negative integer"),
    ("--ckpt-every", "-1", "--ckpt-every must be a non-negative integer"),
    ("--max-side", "16", "--max-side must be an integer >= 32, got 16"),
    ("--aux-motion", "-1", "--aux-motion must be a number >= 0"),
    ("--grad-loss", "nan", "--grad-loss must be a number >= 0"),
    ("--skips", "0,1", "--skips must be comma-separated integers >= 1"),
    ("--export", "w.txt", "--export w.txt: unsupported file type"),
    ("--export-only", None, "--export-only needs --export"),
    ("--device", "tpu", "--device='tpu'"),
]


@pytest.mark.parametrize("option, value, message", REFUSED, ids=[f"{o} {v}" for o, v, _ in REFUSED])
def test_a_bad_option_is_refused_in_one_line_naming_it(option, value, message, capsys):
    with pytest.raises(SystemExit) as e:
        parse_args([option if value is None else f"{option}={value}"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # the one line, not argparse's usage before it
    assert err[-1].startswith("mind-engine train: error: ") and message in err[-1], err[-1]


def test_shares_of_one_batch_sum_to_at_most_one(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--warp", "0.6", "--synthetic", "0.3", "--layered", "0.2"])
    assert "must sum to at most 1" in capsys.readouterr().err
    a = parse_args(["--warp", "0.5", "--synthetic", "0.3", "--layered", "0.2", "--clip-grad", "none"])
    assert a.clip_grad is None and a.warp + a.synthetic + a.layered == 1.0


def test_numbers_are_normalised():
    a = parse_args(["--steps", "1e3", "--batch-size", "4.0", "--gaps", "1,2", "--lr", "1e-4"])
    assert a.steps == 1000 and isinstance(a.steps, int) and a.batch_size == 4 and a.gaps == (1, 2)
    assert a.lr == 1e-4


@pytest.mark.parametrize("value", ["0", "-1", "abc", "99999", "1.5"])
def test_a_bad_mind_threads_is_refused_in_one_line_naming_the_variable(value, capsys, monkeypatch):
    monkeypatch.setenv("MIND_THREADS", value)
    with pytest.raises(SystemExit) as e:
        parse_args([])
    assert e.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    err = lines[0]
    assert err.startswith("mind-engine train: error: the environment variable MIND_THREADS must be an integer in 1..")
    assert repr(value) in err or value in err, err


def test_mind_threads_is_the_default_thread_count(monkeypatch):
    from mind_engine.training.cli import default_num_threads

    monkeypatch.setenv("MIND_THREADS", "1")
    assert parse_args([]).threads is None and default_num_threads() == 1
    monkeypatch.delenv("MIND_THREADS")
    assert default_num_threads() == os.cpu_count()


def test_a_short_run_scales_the_recipe_s_warm_up_and_checks():
    """The card's warm-up (100) and checks (every 500) for a long run; a short run's are scaled to
    its length (at most 10 % warm-up, a check at least every half); given values are kept."""
    a = parse_args(["--steps", "200"])
    assert (a.warmup, a.match_val_every) == (20, 100)
    assert (parse_args([]).warmup, parse_args([]).match_val_every) == (100, 500)
    a = parse_args(["--steps", "200", "--warmup", "100", "--match-val-every", "0"])
    assert (a.warmup, a.match_val_every) == (100, 0)
    assert parse_args(["--steps", "1"]).match_val_every == 1


def test_export_of_an_unfinished_run_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(["--steps", "200", "--stop-at", "100", "--export", "mine.safetensors"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and "would export an unfinished run" in err and "--export-only" in err
    assert parse_args(["--steps", "200", "--stop-at", "200", "--export", "mine.safetensors"]).export
