"""Self-supervised training of MindNet (its data come from ``mind_engine.data``).

    validation.py  matching accuracy on validation pairs with known motion; best.safetensors by it
    cli.py         the command's options
    checkpoint.py  checkpoints and random state, for exact resume
    loop.py        the training loop (single process, or DDP under torchrun)
"""
from .loop import charbonnier, main

__all__ = ["charbonnier", "main"]
