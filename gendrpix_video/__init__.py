"""gendrpix-video: restore and upscale video with GenDR-Pix.

Layers, imports pointing down only: front ends (cli/, measure/, training/, the VapourSynth filter)
-> video/ (files: `video.upscale_file`, `video.UpscaleSettings`) -> the core (this package's
modules: model, padcfg.restore, loading, policy). The public core API below is stable.
"""

from .configs import CONFIGS, UNetConfig, get_config
from .loading import ModelInfo, list_models, load_model
from .model import GenDRPix, build_model, count_parameters
from .padcfg import restore
from .weights import WeightsError, load_weights, save_weights

__version__ = "0.1.0"
__all__ = ["build_model", "load_model", "list_models", "ModelInfo", "restore", "save_weights", "load_weights", "WeightsError",
           "GenDRPix", "UNetConfig", "CONFIGS", "get_config", "count_parameters", "__version__"]
