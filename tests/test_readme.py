"""The README works as written: each command of its shell blocks, and its Python example, is run
here (with the default model swapped for a tiny one, in a scratch folder) or, where it takes
minutes, data or a GPU, checked against the script's own options; the install, test and wheel
commands are the ones .ci/run runs. A command added to the README without a check here fails."""
import contextlib
import importlib.util
import io
import re
import shlex
from pathlib import Path

import pytest
import torch

import mind_engine as me
from mind_engine import cli, weights

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()
pytestmark = pytest.mark.usefixtures("one_thread")


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def shell_commands() -> list[str]:
    """Every command of the README's bash blocks: continuations joined, comments dropped."""
    out = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            for cmd in line.split("  #")[0].split(" && "):
                if cmd.strip():
                    out.append(" ".join(cmd.split()))
    return out


def _script_main(path: str):
    spec = importlib.util.spec_from_file_location(Path(path).stem + "_readme", ROOT / path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def _training_main(argv):
    from mind_engine.training import main

    return main(argv)


def _help(main) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            code = main(["--help"])  # the mind-engine CLI returns its status, the scripts exit
        except SystemExit as e:
            code = e.code
    assert code in (0, None)
    return buf.getvalue()


def kind(cmd: str):
    """How a README command is checked: ("ci", text .ci/run must hold), ("run", argv of
    mind-engine) or ("options", the main() whose --help must list every option used)."""
    words = shlex.split(cmd)
    if cmd == "python3 -m venv .venv":
        return "ci", 'python3 -m venv "$tmp/venv"'
    if cmd == '.venv/bin/pip install torch==2.13.0 -e ".[dev]"':
        return "ci", 'pip install -e ".[dev]"'
    if cmd == ".venv/bin/python -m pytest -q tests":
        return "ci", "python -m pytest -q tests"
    if "pip wheel ." in cmd:
        return "ci", "pip wheel ."
    if words[0] == ".venv/bin/mind-engine" and words[1] in ("demo", "match"):
        return "run", words[1:]
    if words[0] == ".venv/bin/mind-engine" and words[1] in ("match-pairs", "match-video"):
        return "options", lambda argv, sub=words[1]: cli.main([sub, *argv])
    if words[0] == ".venv/bin/mind-engine" and words[1] == "export":
        return "options", lambda argv, fmt=words[2]: cli.main(["export", fmt, *argv])
    if words[0] == ".venv/bin/mind-engine" and words[1] == "train" or "mind_engine.training" in words:
        return "options", _training_main
    if words[0] == ".venv/bin/python" and words[1].endswith(".py"):
        return "options", _script_main(words[1])
    return None, None


def test_every_readme_command_has_a_check():
    unknown = [c for c in shell_commands() if kind(c)[0] is None]
    assert not unknown, f"README commands with no check in tests/test_readme.py: {unknown}"
    assert "python -m pytest -q tests" in CI and "pip install torch==2.13.0" in CI


@pytest.mark.parametrize("cmd", [c for c in shell_commands() if kind(c)[0] == "ci"])
def test_ci_runs_the_readme_s_install_test_and_wheel_commands(cmd):
    assert kind(cmd)[1] in CI


@pytest.mark.parametrize("cmd", [c for c in shell_commands() if kind(c)[0] == "options"]
                         + [".venv/bin/python bench/latency.py --out runs/latency.json"])
def test_long_commands_use_only_options_their_script_has(cmd):
    words = shlex.split(cmd)
    if words[0].endswith("mind-engine"):
        words = words[2:]
    if "-m" in words:  # torchrun's own options come before the module's
        words = words[words.index("-m") + 2:]
    used = [w.split("=")[0] for w in words if w.startswith("--")]
    help_text = _help(kind(cmd)[1])
    missing = [o for o in used if not re.search(rf"{re.escape(o)}\b", help_text)]
    assert not missing, f"{cmd}: options not in the script's --help: {missing}"


@pytest.mark.parametrize("bench", ["accuracy", "interpolation", "latency"])
def test_benches_refuse_to_overwrite_committed_results(bench, capsys):
    committed = sorted((ROOT / "bench" / "results").glob(f"{bench}_cpu.json"))
    assert committed, f"bench/results/{bench}_cpu.json is committed"
    before = committed[0].read_bytes()
    with pytest.raises(SystemExit) as e:
        _script_main(f"bench/{bench}.py")(["--device", "cpu"] if bench != "interpolation" else [])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "exists (committed results)" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1, err  # one line, as the README says
    assert committed[0].read_bytes() == before


def test_demo_match_and_python_example_run_as_written(tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    tiny = me.save_model(me.MindNet(encoder=(3, 3, 4, 4, 4), decoder=(4, 4, 4, 3, 3)), tmp_path / "tiny.safetensors")
    monkeypatch.setattr(weights, "DEFAULT_WEIGHTS", tiny)
    weights._default_model.cache_clear()
    monkeypatch.chdir(tmp_path)
    try:
        runs = [kind(c)[1] for c in shell_commands() if kind(c)[0] == "run"]
        assert [r[0] for r in runs] == ["demo", "match"]
        for argv in runs:
            assert cli.main(argv) == 0, capsys.readouterr().err
        for f in ("mind_demo/matches.png", "mind_demo/fig4.png", "matches.png", "matches.json"):
            assert (tmp_path / f).stat().st_size > 0, f
        api, levels, many = blocks("python")
        scope = {}
        exec(compile(api, "README.md", "exec"), scope)
        assert len(scope["m"]) == 2 and scope["g1"].shape == (1, 3, 173, 256) and scope["mid"].shape == (173, 256, 3)
        assert scope["H"] is None or scope["H"].shape == (3, 3)
        exec(compile(levels, "README.md", "exec"), scope)  # coarse to fine, on the same images
        assert scope["res"].levels == 3 and len(scope["m"]) == len(scope["res"].matches)
        assert scope["res"].fields[-1].shape == (173, 256, 2)
        assert scope["ms"].pts1.shape == (11 * 16, 2)  # stride 16 on 256x173
        scope = {}
        exec(compile(many, "README.md", "exec"), scope)
        assert scope["man"]["counts"]["ok"] == 1 and scope["d"]["pts1"].shape[1] == 2
    finally:
        weights._default_model.cache_clear()
