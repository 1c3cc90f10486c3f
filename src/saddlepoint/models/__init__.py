"""Model zoo: a configurable CNN, an MLP and ResNet-18, with normalization (and optional
input quantization) inside the model."""

from saddlepoint.models.cnn import MLP, ConvNet
from saddlepoint.models.preprocess import (
    Normalize,
    Quantize,
    QuantizedModel,
    channel_stats,
    parse_quantize,
)
from saddlepoint.models.registry import MODELS, build_model, count_parameters, register_model
from saddlepoint.models.resnet import ResNet18

__all__ = [
    "MLP",
    "MODELS",
    "ConvNet",
    "Normalize",
    "Quantize",
    "QuantizedModel",
    "ResNet18",
    "build_model",
    "channel_stats",
    "count_parameters",
    "parse_quantize",
    "register_model",
]
