"""``mind-engine train ...``: every argument after ``train`` goes to ``mind_engine.training``."""
from __future__ import annotations


def add_parser(sub) -> None:
    sub.add_parser("train", help="train a model (arguments go to mind_engine.training)", add_help=False)


def run(rest) -> int:
    from ..training import main as train_main

    train_main(list(rest))
    return 0
