"""``python -m mind_engine ...``: the ``mind-engine`` command."""
import sys

from .cli import main

sys.exit(main())
