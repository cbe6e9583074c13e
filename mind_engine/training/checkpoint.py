"""Training checkpoints: model, optimiser, scheduler, step, history and every random state, as
tensors and plain types (loadable with ``torch.load(weights_only=True)``), written atomically."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

CKPT_NAME = "last.pt"


def rng_state(data_gen: torch.Generator, data_gen_all: list | None = None) -> dict:
    """Every random state as tensors and plain types (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    st = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": int(py_state[0]), "state": torch.tensor(py_state[1], dtype=torch.int64),
                   "gauss": py_state[2]},
        "data": data_gen.get_state(),
    }
    if data_gen_all is not None:
        st["data_all"] = data_gen_all
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict, data_gen: torch.Generator, rank: int = 0) -> None:
    """Restore what ``rng_state`` saved; ``rank`` picks this rank's data generator."""
    torch.set_rng_state(st["torch"])
    n = st["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = st["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    if "data_all" in st and rank < len(st["data_all"]):
        data_gen.set_state(st["data_all"][rank])
    else:
        data_gen.set_state(st["data"])
    if "cuda" in st and torch.cuda.is_available() and len(st["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(st["cuda"])


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to a temp file in the same folder, then os.replace: never a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path) -> dict:
    """A checkpoint as saved, on the CPU, without running pickled code."""
    return torch.load(path, map_location="cpu", weights_only=True)
