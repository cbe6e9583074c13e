"""Checkpoint choice by matching accuracy: what the network is for, not its interpolation loss.

Validation pairs are layered scenes (``layered``) with exact frame 1 -> 3 ground truth, textured
only from the training side (``SYNTHETIC_TRAIN_IMAGES`` and the training frames of the clips),
never from the held-out images of ``mind_engine.evaluation.pairs`` that the benchmarks use. They
come from a fixed seed far from any training stream, without photometric jitter, so every
evaluation of a run sees the same pairs.

:func:`match_accuracy` matches them with the public engine (``Engine.match``) on a sparse grid
within ``radius`` and scores the matches with ``mind_engine.evaluation.metrics`` (APE and
Accuracy@10, pooled). :class:`BestCheckpoint` keeps ``best.safetensors``: the weights of the
evaluation with the highest score (the motion probe's with ``--select probe``, the default, else
Accuracy@10), ties broken by the lower APE.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

from ..api import Engine, quiet_search_edge
from ..evaluation.metrics import evaluate
from ..evaluation.pairs import layered_pairs

VAL_SEED = 987_654_321
VAL_SIZE = (128, 128)
VAL_STRIDE = 8
VAL_RADIUS = 32
BEST_NAME = "best.safetensors"
PROBE_IMAGES = ("astronaut", "chelsea")  # training-side stills for the in-training probe


def validation_pairs(n: int = 4, size=VAL_SIZE, max_motion: float = 32.0, clips=None, val_fraction: float = 0.2,
                     seed: int = VAL_SEED):
    """``n`` layered pairs with known motion from training-side textures only."""
    return layered_pairs(n, size, max_motion, seed, split="train", clips=clips, val_fraction=val_fraction)


def match_accuracy(model, pairs, stride: int = VAL_STRIDE, radius: int | None = VAL_RADIUS, tier: str = "auto",
                   matcher=None) -> dict:
    """Pooled ``APE``, ``Acc@10`` and ``n`` (evaluable matches) of ``model``'s matches on ``pairs``.

    ``matcher(img1, img3)`` replaces the engine (anything returning ``pts1``, ``pts3``, ``score``);
    by default ``Engine(..., model=model).match`` at one scale on the grid of ``stride``. The model's
    training mode is restored afterwards.
    """
    if not pairs:
        raise ValueError("match_accuracy needs at least one pair")
    if matcher is None:
        def matcher(i1, i3):
            with quiet_search_edge():  # checkpoints are chosen on one-scale matching, motion beyond it included
                return Engine(i1, i3, model=model, tier=tier).match(stride=stride, radius=radius, progress=False,
                                                                    levels=1, refine="none")  # the network's own
    was_training = model.training if model is not None else False
    try:
        results = [(p.flow, p.valid, {"MIND": matcher(p.img1, p.img3)}) for p in pairs]
    finally:
        if model is not None:
            model.train(was_training)
    r = evaluate(results, 1.0, (10,))["MIND"]
    return {"APE": r["APE"], "Acc@10": r["Acc@10"], "n": r["n"]}


def better(a: dict, b: dict | None) -> bool:
    """Whether result ``a`` beats ``b``: higher ``score`` (the probe's, or Accuracy@10), ties
    broken by lower APE (NaN never wins)."""
    if math.isnan(a["score"]):
        return False
    if b is None or math.isnan(b["score"]):
        return True
    return a["score"] > b["score"] or (a["score"] == b["score"] and a["APE"] < b["APE"])


class BestCheckpoint:
    """Evaluates matching accuracy (and, with ``probe``, the motion probe) and keeps
    ``folder/best.safetensors`` for the best evaluation: by the probe's score when ``probe``,
    else by Accuracy@10.

    The probe runs here on training-side stills (``PROBE_IMAGES``), so the held-out evaluation
    images of ``bench/`` never choose a checkpoint. ``history``: the records of earlier
    evaluations of this run (after a resume), so the best so far is not forgotten.
    """

    def __init__(self, pairs, folder, history=(), stride: int = VAL_STRIDE, radius: int | None = VAL_RADIUS,
                 probe: bool = False):
        self.pairs, self.path = pairs, Path(folder) / BEST_NAME
        self.stride, self.radius, self.probe = stride, radius, probe
        self.best = None
        self.named = False  # whether a line has named the protocol
        for rec in history:
            self._consider(rec)

    def _consider(self, rec: dict) -> bool:
        score = rec.get("probe_score", float("nan")) if self.probe else rec["match_acc10"]
        cand = {"score": score, "APE": rec["match_ape"], "step": rec["step"]}
        if better(cand, self.best):
            self.best = cand
            return True
        return False

    def measure(self, model) -> dict:
        """This evaluation's record fields (without step and choice)."""
        t = time.perf_counter()
        r = match_accuracy(model, self.pairs, self.stride, self.radius)
        rec = {"match_ape": r["APE"], "match_acc10": r["Acc@10"], "match_n": r["n"],
               "match_seconds": round(time.perf_counter() - t, 2)}
        if self.probe:
            from ..evaluation.motion_probe import probe, score

            p = probe(model, images=PROBE_IMAGES)
            rec.update(probe_score=score(p), probe=p["by_d"], probe_seconds=p["seconds"])
        return rec

    def __call__(self, model, step: int, metadata: dict | None = None) -> dict:
        """Evaluate ``model`` at ``step``; if it is the best so far, write its weights. Returns the
        record logged for this evaluation."""
        from ..weights import save_model

        rec = {"step": step, **self.measure(model)}
        rec["best"] = self._consider(rec)
        if rec["best"]:
            chosen = {k: v for k, v in rec.items() if k not in ("step", "best")}
            meta = dict(metadata or {}, step=step, match_validation={
                **chosen, "pairs": len(self.pairs), "stride": self.stride, "radius": self.radius,
                "selected_by": "probe" if self.probe else "Acc@10"})
            save_model(model, self.path, extra_metadata=meta)  # never a torn best.safetensors (safe_write)
        rec["best_step"] = self.best["step"] if self.best else None
        return rec

    @property
    def protocol(self) -> str:
        """How this run's matching is measured, for its lines: not the benchmark's protocol
        (``bench/accuracy.py``, through the pyramid), so its numbers are lower than the README's."""
        h, w = self.pairs[0].img1.shape[:2]
        return (f"{len(self.pairs)} layered validation pair{'s' if len(self.pairs) != 1 else ''} {w}x{h}, one scale, "
                f"stride {self.stride}, radius {self.radius}; not bench/accuracy.py's pyramid protocol")

    def describe(self, rec: dict) -> str:
        """One line for the training log, the first naming the protocol."""
        named, self.named = self.named, True
        line = (f"step {rec['step']}: matching{'' if named else f' ({self.protocol})'} APE {rec['match_ape']:.2f} "
                f"Acc@10 {rec['match_acc10']:.3f}")
        if "probe" in rec:
            disp = " ".join(f"{k}:{v['median_disp']:.1f}" for k, v in rec["probe"].items() if k[0].isdigit())
            line += f"; probe score {rec['probe_score']:.3f}, median displacement by d {disp}"
        return line + f" (best at step {rec['best_step']})"
