"""What a batch job computes: the model (as checkpoint bytes, so any worker on any machine can
build it, and hashed, so results can name it) and the matching settings.

The job's ``fingerprint`` (model hash and settings) is stored with every result: a re-run skips
a pair only when its stored result carries the same fingerprint.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checks import (check_levels, check_memory, check_model, check_not_both, check_queries, check_radius,
                      check_refine, check_stride, check_tier)
from ..model import MindConfig, MindNet
from ..defaults import LEVELS, RADIUS, REFINE, STRIDE
from ..weights import DEFAULT_WEIGHTS, checkpoint_bytes, is_checkpoint_path, model_from_checkpoint, names_default, \
    weights_sha256


@dataclass(frozen=True)
class ModelSpec:
    """A model as safetensors bytes (the file ``save_model`` writes), its configuration and its
    ``weights_sha256`` (over configuration and tensors, the same for a model and its file);
    ``source`` says where it came from."""

    config: dict
    data: bytes
    sha256: str
    source: str

    @classmethod
    def from_args(cls, model: MindNet | None = None, weights=None) -> "ModelSpec":
        """From a model in memory, a checkpoint path (``weights``, or ``model`` as everywhere), or
        (neither, or "default") the bundled default model. A file is checked by loading it once
        here, before any worker starts."""
        check_not_both("model", model, "weights", weights)
        if is_checkpoint_path(model) or (model is not None and names_default(model)):
            model, weights = None, model
        if names_default(weights):
            weights = None
        if model is not None:
            check_model(model)
            data, source = checkpoint_bytes(model), "<in-memory model>"
        else:
            path = Path(weights) if weights is not None else DEFAULT_WEIGHTS
            if weights is None and not path.is_file():
                raise FileNotFoundError(f"this build of mind_engine ships no default model ({path} is absent); "
                                        f"pass weights= (a checkpoint written by mind-engine train)")
            model = model_from_checkpoint(path)  # checks it fits MindNet
            data, source = path.read_bytes(), str(path) if weights is not None else "default"
        return cls(model.config.to_dict(), data, weights_sha256(model), source)

    def build(self, device) -> MindNet:
        """The network on ``device``, in eval mode."""
        from safetensors.torch import load

        net = MindNet(MindConfig(**self.config))
        net.load_state_dict(load(self.data))
        return net.to(device).eval()


@dataclass(frozen=True)
class Settings:
    """The matching arguments of ``mind_engine.match`` that shape the results."""

    stride: int = STRIDE
    radius: int | None = RADIUS
    queries: tuple | None = None  # ((x, y), ...) floats, or None for the grid of ``stride``
    tier: str = "auto"
    memory: int | None = None
    levels: int | str = LEVELS
    refine: str = REFINE

    @classmethod
    def make(cls, stride=STRIDE, radius=RADIUS, queries=None, tier="auto", memory=None,
             device: torch.device | None = None, levels=LEVELS, refine=REFINE) -> "Settings":
        """The settings, each checked as ``mind_engine.match`` checks it (``memory`` against
        ``device``, where the job's device is known here)."""
        q = None if queries is None else tuple(map(tuple, check_queries(queries).tolist()))
        return cls(check_stride(stride), check_radius(radius), q, check_tier(tier, "torch")[0],
                   check_memory(memory, device), check_levels(levels), check_refine(refine))

    def to_dict(self) -> dict:
        """The settings as the manifest keeps them; ``levels`` only when not 1 and ``refine`` only
        when not "none", so that folders written before they existed keep their fingerprints
        (``full_settings`` reads them back)."""
        doc = {"stride": self.stride, "radius": self.radius, "tier": self.tier, "memory": self.memory,
               "queries": None if self.queries is None else [list(q) for q in self.queries]}
        doc = doc if self.levels == 1 else {**doc, "levels": self.levels}
        return doc if self.refine == "none" else {**doc, "refine": self.refine}


def full_settings(doc: dict) -> dict:
    """A manifest's settings with what ``Settings.to_dict`` leaves out put back (``levels`` 1,
    ``refine`` "none")."""
    return {"levels": 1, "refine": "none", **doc}


def fingerprint(spec: ModelSpec, settings: Settings) -> str:
    """sha256 of the model hash and the settings that shape results (not ``memory``, which
    bounds working memory only): equal fingerprints give equal results."""
    doc = {"model_sha256": spec.sha256, **settings.to_dict()}
    doc.pop("memory")
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
