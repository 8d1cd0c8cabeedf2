"""jepaworld: Joint-Embedding Predictive Architectures and JEPA world models in plain PyTorch.

The public API is small: configs and presets, the ViT, masks, losses, methods, the one trainer and the probes.
"""

from jepaworld.config import PRESETS, ExperimentConfig, apply_overrides, get_preset
from jepaworld.losses import Regularizer, covariance_loss, effective_rank, sigreg, variance_loss
from jepaworld.masks import FutureFrames, MultiBlock2D, MultiBlock3D, Random
from jepaworld.methods import JEPA, MAE, METHODS, DataSpec, Method, build_method
from jepaworld.train import TrainResult, train
from jepaworld.vit import VIT_SIZES, Predictor, VisionTransformer, vit

__version__ = "0.1.0"

__all__ = [
    "JEPA", "MAE", "METHODS", "PRESETS", "VIT_SIZES", "DataSpec", "ExperimentConfig", "FutureFrames", "Method",
    "MultiBlock2D", "MultiBlock3D", "Predictor", "Random", "Regularizer", "TrainResult", "VisionTransformer",
    "apply_overrides", "build_method", "covariance_loss", "effective_rank", "get_preset", "sigreg", "train",
    "variance_loss", "vit",
]  # fmt: skip
