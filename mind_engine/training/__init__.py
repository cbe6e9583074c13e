"""Self-supervised training of MindNet (its data come from ``mind_engine.data``).

    recipe.py      the documented recipe: the command's defaults, once
    cli.py         the command's options and their checks
    build.py       a run's device, data and network, from its options
    state.py       what a checkpoint holds and a resume restores
    checkpoint.py  checkpoint files: written atomically, verified (SHA-256, finite) when read
    step.py        one optimiser step, stopping at the first non-finite loss
    losses.py      Charbonnier, the image-gradient term, the motion head's L1
    schedule.py    the learning-rate schedules (plateau; warm-up, hold, cosine)
    motion_head.py --aux-motion's training-only motion head (never exported)
    heldout.py     validation on the held-out triplets (loss, IE)
    validation.py  matching accuracy on validation pairs with known motion, the motion probe; best.safetensors by one
    report.py      the start-up summary, the speed line, --log
    export.py      --export and --export-only: the weights as safetensors
    loop.py        the training loop (single process, or DDP under torchrun)
    __main__.py    ``python -m mind_engine.training`` and ``torchrun -m mind_engine.training``
"""
from .loop import charbonnier, main

__all__ = ["charbonnier", "main"]
