"""gendrpix-video: restore and upscale video with GenDR-Pix.

The pipeline a newcomer should see: decode (video/decode.py) -> model (model.py, padcfg.restore)
-> encode (video/encode.py). The public API below is stable.
"""

from .configs import CONFIGS, UNetConfig, get_config
from .loading import load_model
from .model import GenDRPix, build_model, count_parameters
from .padcfg import restore
from .weights import WeightsError, load_weights, save_weights

__version__ = "0.1.0"
__all__ = ["build_model", "load_model", "restore", "save_weights", "load_weights", "WeightsError",
           "GenDRPix", "UNetConfig", "CONFIGS", "get_config", "count_parameters", "__version__"]
