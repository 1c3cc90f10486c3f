"""Model zoo: a configurable CNN, an MLP and ResNet-18, with normalization inside the model."""

from saddlepoint.models.cnn import MLP, ConvNet
from saddlepoint.models.preprocess import Normalize, channel_stats
from saddlepoint.models.registry import MODELS, build_model, count_parameters, register_model
from saddlepoint.models.resnet import ResNet18

__all__ = [
    "MLP",
    "MODELS",
    "ConvNet",
    "Normalize",
    "ResNet18",
    "build_model",
    "channel_stats",
    "count_parameters",
    "register_model",
]
