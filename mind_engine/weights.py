"""Checkpoints: safetensors files holding the tensors and, in their metadata, the configuration.

Loading never runs pickled code and checks every name and shape, listing all that do not fit.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from .checks import MODEL_DTYPES, check_device, check_model, nonfinite_tensors
from .model import MindConfig, MindNet
from .safe_write import write_bytes

DEFAULT_WEIGHTS = Path(__file__).with_name("weights") / "default.safetensors"
FORMAT = "mind_engine/1"
TORCH_ZIP_MAGIC = b"PK\x03\x04"  # how a torch.save file starts (a zip); safetensors: its header's length
PICKLE_PROTO = b"\x80"  # how a legacy (pre-zip) torch.save pickle starts
# what a training checkpoint's pickle names (read as bytes, never unpickled): its format (0.3), or
# the optimiser and history of the state itself (before)
TRAINING_MARKS = (b"mind_engine.training/",), (b"optimizer", b"history", b"train_seconds")
DEFAULT = "default"  # names the bundled model wherever a model or a checkpoint path is taken


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded into MindNet, with every reason listed."""


def checkpoint_bytes(model: MindNet, extra_metadata: dict | None = None) -> bytes:
    """The bytes ``save_model`` writes: ``model``'s weights and configuration as safetensors."""
    meta = {"format": FORMAT, "config": json.dumps(model.config.to_dict())}
    for key, value in (extra_metadata or {}).items():
        meta[str(key)] = value if isinstance(value, str) else json.dumps(value)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return save(state, metadata=meta)


def weights_sha256(model: MindNet) -> str:
    """sha256 over the configuration and every tensor's name, shape and float32 bytes: the same
    for a model in memory and for any checkpoint file of it (a file's own bytes are not: safetensors
    writes metadata keys in no fixed order)."""
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def save_model(model: MindNet, path, extra_metadata: dict | None = None) -> Path:
    """Write ``model``'s weights and configuration to a safetensors file (``safe_write``: atomic,
    a full disk is one ``WriteError`` line and the old file stays)."""
    return write_bytes(path, checkpoint_bytes(model, extra_metadata))


def _is_training_checkpoint(path: Path) -> bool:
    """Whether the torch zip ``path`` is the training command's ``last.pt``: its pickle's bytes
    name ``TRAINING_MARKS`` (read, never unpickled)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            pickled = next((z.read(n) for n in z.namelist() if n.endswith("/data.pkl")), b"")
    except (OSError, zipfile.BadZipFile):
        return False
    return any(all(m in pickled for m in marks) for marks in TRAINING_MARKS)


def _refuse_torch_file(path: Path) -> None:
    """A ``torch.save`` file (a zip, or a legacy pickle) is not weights: the training command's
    ``last.pt`` is named as such, with how to export its weights; any other pickle (a state_dict)
    as a pickle, with what to do, instead of safetensors' "header too large". Never unpickled."""
    with open(path, "rb") as f:
        head = f.read(9)
    if head[8:9] == b"{" or not (head[:4] == TORCH_ZIP_MAGIC or head[:1] == PICKLE_PROTO):
        return  # 8 bytes of header length, then the JSON header: safetensors (or not a pickle at all)
    if head[:4] == TORCH_ZIP_MAGIC and _is_training_checkpoint(path):
        raise CheckpointError(f"{path} is a training checkpoint (last.pt), not a weights file; export its weights "
                              f"with `mind-engine train --resume {path} --export-only --export W.safetensors` "
                              f"and load W.safetensors")
    raise CheckpointError(f"{path} is a pickle (torch.save) file, not a safetensors weights file; mind_engine never "
                          f"unpickles (it can run code): load the state_dict into mind_engine.MindNet yourself, "
                          f"if you trust it, and write it with mind_engine.save_model")


def read_checkpoint(path) -> tuple[MindConfig, dict[str, torch.Tensor], dict[str, str]]:
    """The configuration, tensors and metadata of a checkpoint file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    _refuse_torch_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from e
    if "config" not in meta:
        raise CheckpointError(f"{path} holds no mind_engine configuration in its metadata "
                              f"(write checkpoints with mind_engine.weights.save_model)")
    try:
        config = MindConfig(**json.loads(meta["config"]))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad configuration {meta['config']!r}: {e}") from e
    return config, tensors, meta


def model_from_checkpoint(path) -> MindNet:
    """Build the network a checkpoint describes and load its tensors, strictly."""
    config, tensors, _ = read_checkpoint(path)
    model = MindNet(config)
    expected = model.state_dict()
    problems = [f"missing tensor {k} {tuple(v.shape)}" for k, v in expected.items() if k not in tensors]
    problems += [f"unexpected tensor {k} {tuple(v.shape)}" for k, v in tensors.items() if k not in expected]
    problems += [f"tensor {k}: checkpoint has shape {tuple(tensors[k].shape)}, "
                 f"the network ({config}) expects {tuple(v.shape)}"
                 for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]
    if problems:
        raise CheckpointError(f"{path} does not fit MindNet:\n  " + "\n  ".join(problems))
    odd = sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values() if t.dtype not in MODEL_DTYPES})
    if odd:  # an integer tensor would be cast to float and run, giving scores of 0 and no error
        raise CheckpointError(f"{path} holds weights of dtype {', '.join(odd)}; a checkpoint's weights must be "
                              f"floating point (float32, or float64, float16, bfloat16, run as float32)")
    broken = nonfinite_tensors(tensors)
    if broken:
        raise CheckpointError(f"{path} holds non-finite (NaN or inf) values, a corrupt or diverged checkpoint: "
                              + ", ".join(broken))
    model.load_state_dict({k: t.to(expected[k].dtype) for k, t in tensors.items()})
    return model.eval()


@lru_cache(maxsize=4)
def _default_model(device: str) -> MindNet:
    if not DEFAULT_WEIGHTS.is_file():
        raise FileNotFoundError(
            f"this build of mind_engine ships no trained default model ({DEFAULT_WEIGHTS} is "
            f"absent); pass a checkpoint: load_model('my.safetensors'), trained with "
            f"`mind-engine train`. mind_engine never falls back to a random model.")
    model = model_from_checkpoint(DEFAULT_WEIGHTS).to(device)
    model.requires_grad_(False)
    return model


def default_model(device) -> MindNet:
    """The bundled default model on ``device``, loaded once and shared by mind_engine's own entry
    points, which only read it (callers get copies from ``load_model``)."""
    return _default_model(str(torch.device(device)))


def names_default(model) -> bool:
    """``model`` is None or the string "default" (any case): the bundled default model."""
    return model is None or (isinstance(model, str) and model.strip().lower() == DEFAULT)


def is_checkpoint_path(model) -> bool:
    """``model`` names a checkpoint file (a str or a path), not "default" or a model."""
    return isinstance(model, (str, os.PathLike)) and not names_default(model)


def resolve_model(model, device):
    """The model and device to run on, never changing the caller's model.

    The device rule (``mind_engine.checks.default_device``): the one asked for; else the model's
    when a model is given; else CUDA when available, else the CPU. ``model=None`` or "default"
    takes the bundled default model (shared read-only); a path (str or ``os.PathLike``) loads that
    checkpoint as ``load_model`` does, with the same checks. A caller's model is checked
    (``checks.check_model``: a MindNet with real, finite weights); one that is on another device,
    in training mode or not float32 is copied, moved, cast to float32 and set to eval; the
    caller's object is left as it was.
    """
    if names_default(model):
        device = check_device(device)
        return default_model(device), device
    if is_checkpoint_path(model):
        device = check_device(device)
        return model_from_checkpoint(model).to(device), device
    check_model(model)
    params = list(model.parameters())
    here = params[0].device if params else torch.device("cpu")
    device = check_device(here if device is None else device)
    if here != device or model.training or any(p.dtype != torch.float32 for p in params):
        model = copy.deepcopy(model).to(device=device, dtype=torch.float32).eval()
    return model, device


def load_model(path=None, device=None) -> MindNet:
    """The bundled default model (``path`` None or "default") or the checkpoint at ``path``, in
    eval mode, on ``device`` (None: CUDA when available, else the CPU, as everywhere in mind_engine).

    Each call returns the caller's own model: changing it changes no other caller's.
    """
    device = check_device(device)
    if names_default(path):
        model = copy.deepcopy(default_model(device))
        return model.requires_grad_(True)
    return model_from_checkpoint(path).to(device)
