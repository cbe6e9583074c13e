"""``mind-engine bench NAME ...``: run ``bench/NAME.py`` of a source checkout with the arguments
after its name (the benchmarks are not in the wheel)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..cliargs import subcommand
from .common import UserError

BENCHES = ("latency", "accuracy", "interpolation", "throughput")


def add_parser(sub) -> None:
    b = subcommand(sub, "bench", "run a benchmark script of the repository's bench/",
                   epilog="Every argument after NAME passes through to bench/NAME.py unchanged: "
                          "`mind-engine bench latency --help` prints that script's own options.")
    b.add_argument("name", choices=BENCHES, help="which benchmark")
    b.add_argument("args", nargs="*", metavar="ARG", help="passed through to bench/NAME.py (its --help lists them)")


def find_bench(name: str) -> Path:
    """bench/<name>.py of a source checkout: beside the package, or under the working directory."""
    here = Path(__file__).resolve().parents[2] / "bench" / f"{name}.py"
    cwd = Path.cwd() / "bench" / f"{name}.py"
    for p in (here, cwd):
        if p.is_file():
            return p
    for p in (here, cwd):
        if p.parent.is_dir():
            raise UserError(f"{p} does not exist: this checkout has no {name} benchmark yet")
    raise UserError(f"bench/{name}.py not found: the benchmarks live in bench/ of the mind_engine "
                    f"source repository, which an installed wheel does not include; run this from a "
                    f"checkout (or `python bench/{name}.py` there). Looked in {here.parent} and {cwd.parent}")


def run(name: str, rest) -> int:
    script = find_bench(name)
    return subprocess.call([sys.executable, str(script), *rest], cwd=str(Path.cwd()))
