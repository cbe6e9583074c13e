"""mind_engine in the shapes other libraries use: a kornia-LoFTR-style matcher module
(``loftr.MindMatcher``) and OpenCV objects from ``Matches`` (``opencv``)."""
from .loftr import MindMatcher
from .opencv import to_cv_keypoints, to_cv_matches, to_cv_points

__all__ = ["MindMatcher", "to_cv_keypoints", "to_cv_matches", "to_cv_points"]
