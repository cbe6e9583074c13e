"""``python -m mind_engine.training`` (and ``torchrun -m mind_engine.training``): train MindNet."""
from .loop import main

if __name__ == "__main__":
    main()
