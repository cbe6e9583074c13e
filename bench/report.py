"""What every benchmark script starts and ends with: where its JSON goes (checked before the
bench runs: committed results under bench/results/ are never overwritten without --force), the
JSON itself and its table, and figures, each written through ``mind_engine.safe_write`` (atomic;
a full disk is one line and the old file stays)."""
from __future__ import annotations

import argparse
from pathlib import Path

from mind_engine.cliargs import refuse

RESULTS = Path(__file__).resolve().parent / "results"


def add_output_args(p: argparse.ArgumentParser, default_name: str) -> None:
    kind = Path(default_name).suffix.lstrip(".").upper() or "output"
    p.add_argument("--out", default=None, help=f"{kind} path (default bench/results/{default_name})")
    p.add_argument("--force", action="store_true", help=f"overwrite the {kind} file if it exists (committed results too)")


def output_path(p: argparse.ArgumentParser, args, default_name: str) -> Path:
    """The output path (JSON, figure) of this run, refused (exit 2, before any work) when it exists and --force is
    not given, or when its folder cannot be written."""
    from mind_engine.checks import check_writable

    path = Path(args.out) if args.out else RESULTS / default_name
    if path.exists() and not args.force:
        refuse(p.prog, f"{path} exists{' (committed results)' if path.parent == RESULTS else ''}: pass --out "
                  f"NEW{path.suffix} to write elsewhere, or --force to overwrite it")
    try:
        check_writable(path, "--out")
    except ValueError as e:
        refuse(p.prog, str(e))
    return path


def check_args(p: argparse.ArgumentParser, args, rules: dict) -> None:
    """The script's options through the commands' argument layer (``mind_engine.cliargs.check_options``
    with ``rules``, option -> rule(value, its name)): a refusal is one line naming the option, exit 2."""
    from mind_engine.cliargs import check_options

    try:
        check_options(args, rules)
    except (ValueError, OSError) as e:
        refuse(p.prog, str(e))


def weights_rule(value, name: str):
    """--weights: None (the bundled model) or a safetensors checkpoint ``load_model`` reads; a pickle
    or ``torch.save`` file is refused by its first bytes, never unpickled."""
    from mind_engine.weights import read_checkpoint

    if value is not None and value != "default":
        try:
            read_checkpoint(value)
        except (OSError, ValueError) as e:
            raise ValueError(f"{name}: {e}") from None
    return value


def write_json(doc: dict, path: Path) -> Path:
    """Write ``doc`` to ``path`` (from ``output_path``) and say where."""
    from mind_engine.safe_write import write_json as write

    write(path, doc)
    print(f"wrote {path}")
    return path


def publish(doc: dict, table, path: Path) -> dict:
    """The end of a benchmark: print ``table(doc)``, write ``doc`` to ``path``; returns ``doc``."""
    table(doc)
    write_json(doc, path)
    return doc


def save_figure(fig, path: Path) -> Path:
    """Lay out and write a matplotlib figure (its folder made if missing)."""
    from mind_engine.safe_write import write_figure

    fig.tight_layout()
    return write_figure(fig, path, dpi=90)
