"""CI's check of an installed wheel (run from outside the source tree, in a venv holding only the
wheel and its dependencies): the package and its compiled module load, the default weights ship
and load, and a small match runs through the C++ ops."""
import sys
from pathlib import Path

import numpy as np

import mind_engine as me
from mind_engine import _C
from mind_engine.ops.dispatch import ext

root = Path(sys.argv[1]).resolve()
where = Path(me.__file__).resolve()
assert root not in where.parents, f"imported the source tree ({where}), not the wheel"
assert ext() is _C, "mind_engine._C imports but the dispatcher does not use it"
print(f"mind_engine {me.__version__} from {where.parent}; _C.cuda_compiled()={_C.cuda_compiled()}, "
      f"cuda_available()={_C.cuda_available()}")
model = me.load_model(device="cpu")
rng = np.random.default_rng(0)
a = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
m = me.match(a, np.roll(a, 3, axis=1), stride=16, radius=8, model=model, device="cpu")
assert len(m) == 12 and np.isfinite(m.score).all() and (np.abs(m.pts1 - m.query) <= 8).all()
print(f"default model {sum(p.numel() for p in model.parameters())} parameters; a 64x48 match: {len(m)} matches")
