"""mind_engine: exact, fast MIND matching (Long et al., ECCV 2016) by inverting a frame-interpolation CNN."""
from .api import Matches, jacobian_rows, match
from .engine import Engine
from .batch import match_many
from .interpolate import interpolate
from .model import MindConfig, MindNet
from .version import __version__
from .weights import load_model, save_model

__all__ = ["Engine", "Matches", "MindConfig", "MindNet", "interpolate", "jacobian_rows", "load_model", "match",
           "match_many", "save_model", "__version__"]
