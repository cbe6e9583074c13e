"""``python -m mind_engine.training`` (and ``torchrun -m mind_engine.training``): train MindNet; a
refusal is one line and exit status 2."""
import sys

from .loop import run_cli

if __name__ == "__main__":
    sys.exit(run_cli())
