"""Measuring MIND the paper's way, against what users would pick instead.

    pairs.py          evaluation pairs with ground truth: synthetic motion, Middlebury motorcycle,
                      KITTI 2012, Sintel
    metrics.py        APE and Accuracy@T with the paper's fairness protocol (same grid, same K)
    baselines.py      OpenCV's KLT and DIS on the same grid
    interpolation.py  IE and NE of interpolated frames (Middlebury)
    figures.py        match and sensitivity figures
"""
