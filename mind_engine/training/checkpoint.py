"""Training checkpoints: model, optimiser, scheduler, step, history and every random state, as
tensors and plain types (loadable with ``torch.load(weights_only=True)``), written atomically and
verified when read.

A checkpoint file is a torch zip holding the state's own ``torch.save`` bytes (``payload``) and
their SHA-256 (``sha256``), so a flipped byte anywhere in the state is found before it is used;
files written before 0.3 (the state itself, no digest) are still read. On both sides every
floating tensor of the weights and the optimiser state must be finite: a diverged state is never
written, and never resumed. Every refusal is one line (``CheckpointError``).
"""
from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path

import numpy as np
import torch

from ..checks import nonfinite_tensors
from ..safe_write import write_bytes

CKPT_NAME = "last.pt"
FORMAT = "mind_engine.training/2"  # the payload-and-digest file; the state itself before it


class CheckpointError(ValueError):
    """A training checkpoint that cannot be used: unreadable, truncated, altered or not finite."""


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


def state_tensors(state: dict) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint's weights and optimiser state, by a name that says where."""
    out = {f"model.{k}": v for k, v in state.get("model", {}).items()}
    out.update({f"motion_head.{k}": v for k, v in state.get("motion_head", {}).items()})
    for pid, st in state.get("optimizer", {}).get("state", {}).items():
        out.update({f"optimizer.state[{pid}].{k}": v for k, v in st.items() if isinstance(v, torch.Tensor)})
    return out


def nonfinite_state(state: dict) -> list[str]:
    """Where a checkpoint's weights or optimiser state hold NaN or inf (``checks.nonfinite_tensors``)."""
    return nonfinite_tensors(state_tensors(state))


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` with its SHA-256 through ``safe_write`` (a temporary in the same folder and
    os.replace): never a torn file, never through a planted link; a full disk is one
    ``WriteError`` line and the last good checkpoint stays. A state with non-finite weights or
    optimiser state is refused."""
    broken = nonfinite_state(state)
    if broken:
        raise CheckpointError(f"not writing {path}: the training state holds NaN or inf in {broken[0]}"
                              + (f" and {len(broken) - 1} more tensors" if len(broken) > 1 else ""))
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    wrapped = {"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(),
               "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}
    buf = io.BytesIO()
    torch.save(wrapped, buf)
    write_bytes(path, buf.getbuffer())


def _torch_load(source, path) -> dict:
    """``torch.load`` on the CPU without running pickled code; any failure is one line."""
    try:
        obj = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as e:  # zip, pickle and EOF errors of a truncated or altered file
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0].split(". ")[0]
        raise CheckpointError(f"{path} is not a readable training checkpoint, truncated or corrupted "
                              f"({type(e).__name__}: {reason})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not a mind_engine training checkpoint (it holds a {type(obj).__name__})")
    return obj


def load_checkpoint(path) -> dict:
    """A checkpoint's state, on the CPU, verified: its digest (files written since 0.3), its
    structure and the finiteness of its weights and optimiser state."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no training checkpoint at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): not a training checkpoint")
    state = _torch_load(path, path)
    if state.get("format") == FORMAT:
        payload = state.get("payload")
        if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8:
            raise CheckpointError(f"{path} is corrupted: its payload is missing")
        data = payload.numpy().tobytes()
        if hashlib.sha256(data).hexdigest() != state.get("sha256"):
            raise CheckpointError(f"{path} is corrupted: its contents do not match the SHA-256 stored with them")
        state = _torch_load(io.BytesIO(data), path)
    missing = [k for k in ("config", "model", "optimizer", "scheduler", "step", "history", "rng") if k not in state]
    if missing:
        raise CheckpointError(f"{path} is not a mind_engine training checkpoint: it lacks {', '.join(missing)}")
    broken = nonfinite_state(state)
    if broken:
        raise CheckpointError(f"{path} holds NaN or inf in {broken[0]}"
                              + (f" and {len(broken) - 1} more tensors" if len(broken) > 1 else "")
                              + ": a diverged or corrupted run; resume from an earlier copy or start afresh")
    return state
