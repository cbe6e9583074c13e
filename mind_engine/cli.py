"""The ``mind-engine`` command (also ``python -m mind_engine``): one parser and one ``main``
assembled from the sub-commands, each in a module of its own.

    mind-engine match IMG1 IMG3 [--stride 4] [--radius 32] [--levels auto] ...   (mind_engine.commands.match)
    mind-engine match-pairs LIST --out DIR [--ray] [--workers N] ...   (mind_engine.batch.cli)
    mind-engine match-video VIDEO --gap K --out DIR [--ray] ...
    mind-engine interpolate IMG1 IMG3 --out mid.png [--weights W] [--device D]
    mind-engine export {onnx,tensorrt} ...   (mind_engine.backends.cli)
    mind-engine train ...                 (all arguments go to mind_engine.training)
    mind-engine bench {latency,accuracy,interpolation,throughput} ...   (runs bench/<name>.py of the repo)
    mind-engine demo [--out mind_demo] [--weights W]
    mind-engine --version

The matching defaults (stride, radius, levels) are ``mind_engine.defaults``', as in the API.
Errors a user can cause (missing or unreadable files, bad checkpoints, bad options, devices that
are not there, output paths that cannot be written or that would overwrite an input or each
other) end with exit status 2 and one line ``mind-engine <command>: error: ...`` on stderr, not
a traceback, and are found before any network runs. Options are checked by the rules of the API
(``mind_engine.cliargs``). Ctrl-C ends with status 130, SIGTERM with 143, and one line.
"""
from __future__ import annotations

import argparse
import sys

from .backends import cli as export_cli
from .batch import cli as batch_cli
from .batch.signals import Terminated
from .cliargs import check_options
from .commands import bench, demo, interpolate, match, train
from .commands.common import UserError
from .version import __version__

PROG = "mind-engine"


def tier_names() -> list[str]:
    from .engine.tiers import tier_names as names

    return ["auto", *names()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="MIND image matching by inverting a frame-interpolation CNN.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    match.add_parser(sub, tier_names())
    batch_cli.add_parsers(sub, tier_names())
    interpolate.add_parser(sub)
    export_cli.add_parsers(sub)
    train.add_parser(sub)
    bench.add_parser(sub)
    demo.add_parser(sub)
    return p


COMMANDS = {"match": match.run, "interpolate": interpolate.run, "demo": demo.run, "export": export_cli.cmd_export,
            "match-pairs": batch_cli.cmd_match_pairs, "match-video": batch_cli.cmd_match_video}


def _dispatch(argv: list[str], parser: argparse.ArgumentParser) -> int:
    """Run the sub-command ``argv`` names; train and bench pass everything after their name through."""
    if argv and argv[0] == "train":
        return train.run(argv[1:])
    if argv and argv[0] == "bench" and len(argv) > 1 and argv[1] in bench.BENCHES:
        return bench.run(argv[1], argv[2:])
    try:
        a = parser.parse_args(argv)
    except SystemExit as e:  # argparse has printed usage, help or the version: hand back its status
        return e.code or 0
    check_options(a)
    return COMMANDS[a.cmd](a)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = f"{PROG} {argv[0]}" if argv and argv[0] in (*COMMANDS, "train", "bench") else PROG
    try:
        return _dispatch(argv, build_parser())
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: stop without a traceback, nothing half-written is kept open
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Terminated:  # SIGTERM during a batch job, whose manifest says so
        print(f"{prog}: terminated", file=sys.stderr)
        return 143
    except ImportError as e:  # figures, demo, baselines and export use the extras
        if (e.name or "").startswith("mind_engine"):
            raise  # a broken install of mind_engine itself, not a missing extra
        print(f"{prog}: error: this command needs {e.name or e}, which is not installed "
              f"(pip install 'mind-engine[dev]' installs every extra: opencv-python-headless, matplotlib, "
              f"scikit-image, scikit-video, imageio-ffmpeg, onnx, onnxruntime, onnxscript)", file=sys.stderr)
        return 2
    except (ValueError, OSError, MemoryError) as e:  # ImageError, CheckpointError, bad options, unreadable files
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
