"""mind_engine: exact, fast MIND matching (Long et al., ECCV 2016) by inverting a frame-interpolation CNN."""
from .api import Engine, Matches, SearchEdgeWarning, jacobian_rows, match, match_fb, match_subpixel
from .batch import match_many
from .interpolate import interpolate
from .model import MindConfig, MindNet
from .version import __version__
from .weights import load_model, save_model

__all__ = ["Engine", "Matches", "MindConfig", "MindNet", "SearchEdgeWarning", "interpolate", "jacobian_rows",
           "load_model", "match", "match_fb", "match_many", "match_subpixel", "save_model", "__version__"]
