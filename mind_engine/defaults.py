"""The matching defaults a user meets, in one table that every entry point reads: ``match``,
``Engine.match`` (and ``coarse_to_fine``, ``refine``), ``match_subpixel``, ``match_fb``,
``MindMatcher``, ``match_many`` and the ``mind-engine`` commands ``match``, ``match-pairs``,
``match-video`` and ``demo`` (``tests/test_defaults.py`` reads them all back).

Coarse to fine by default: the bundled model follows a few pixels of motion at one scale, so
the single-scale matcher over the whole image (the paper's, and this project's default until
0.3) was both the slowest and the least reliable call (issue 32: 74-85 s per 256x128 pair and 4 %
of matches within 10 px on a 19 px shift, against 10-11 s and 100 % through the pyramid).
``levels=1`` is still the paper's single-scale matcher; sub-pixel refinement takes the same
defaults and refines at the pyramid's finest level.
"""
from __future__ import annotations

STRIDE = 4  # a query every 4 px: the semi-dense job of bench/latency.py and bench/precision.py
RADIUS = 32  # px of search range around each query: the range of the latency and accuracy figures with levels
LEVELS = "auto"  # coarse to fine, as deep as the range needs (mind_engine.engine.levels.auto_levels)
# The finest pyramid level MIND runs at, in ``match`` and ``Engine.match``: "auto" is 1 (MIND stops one
# level early and its field is read at the queries) when a photometric refinement ("dis", "lk")
# finishes the last pixels, else 0 (the readout itself, "none", and its own peaks, "peak", need the
# caller's resolution). Measured in one run of bench/accuracy.py per value (issue 38, 2026-12-07;
# bench/results/accuracy_cpu.json at 8242afc for level 0, now for level 1): with "dis", level 1 lost
# at most 0.006 of Accuracy@2 and 0.003 of Accuracy@10 on any dataset for 118 of 575 GMAC of the
# network's work (README, "The default call stops one level early").
FINEST_LEVEL = "auto"

# The refinement stage (``mind_engine.refinement``): the variant bench/refine_study.py chose by its
# rule, fixed before the run (the best mean Accuracy@2 over its datasets among the variants whose
# Accuracy@10 is not below raw MIND's on any; bench/results/refine_study_cpu.json): "dis" with a
# 32 px move limit and a 2 px check (mean Acc@2 0.952, raw MIND 0.402); the best LK variant
# (window 15, 1 level, 16 px, 2 px, both ends: 0.890) sets the LK values.
REFINE = "dis"  # "dis": OpenCV's DIS started from MIND's matches; "lk": OpenCV's LK; "peak"; "none": the readout
DIS_MOVE_LIMIT = 32.0  # px: a refined end farther than this from MIND's falls back to MIND's (refine="dis")
LK_MOVE_LIMIT = 16.0  # px: the same for refine="lk" (32 px lost Acc@10 on a dataset)
CHECK_TOL = 2.0  # px: the forward-backward check's tolerance
LK_WINDOW = 15  # px, LK's square window (also the check's, for "lk" and "peak")
LK_LEVELS = 1  # LK's pyramid levels above the image
LK_BOTH = True  # refine the frame-1 end too (after the frame-3 end, from it)
