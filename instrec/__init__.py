"""instrec: which of the 11 IRMAS instruments play in a piece of music.

The library shared by training, export, the command line and the app. Importing it needs no
PyTorch; :class:`~instrec.recognizer.Recognizer` needs onnxruntime.
"""

from .audio import AudioError
from .labels import CODES, NAMES
from .params import DEFAULT, FeatureParams

__version__ = "0.3.0"

__all__ = ["AudioError", "CODES", "NAMES", "DEFAULT", "FeatureParams", "__version__"]
