"""Models by name: presets of the configurable CNN, the MLP and ResNet-18.

Each preset records where it comes from (the seed reports) so ``saddlepoint models`` can show it.
``build_model`` attaches a ``spec`` (name + keyword arguments) that checkpoints store, so a model
is rebuilt from metadata alone.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from saddlepoint.models.cnn import MLP, ConvNet
from saddlepoint.models.preprocess import QuantizedModel, parse_quantize
from saddlepoint.models.resnet import ResNet18
from saddlepoint.registry import Registry
from saddlepoint.validation import check_keywords, check_number, unknown_name_error


def surrogate_cnn(*, depth: int = 3, width: int = 64, **kwargs: Any) -> ConvNet:
    """Seed 000's transfer-study family: ``depth`` blocks of ``width`` 2x2 'valid' convs with
    max-pooling, flattened into a 256-unit dense layer (matches all eleven parameter counts the
    report gives on CIFAR-10)."""
    check_number("surrogate-cnn", "depth", depth, low=1, high=6, integer=True)
    check_number("surrogate-cnn", "width", width, low=1, integer=True)
    options: dict[str, Any] = {
        "kernel_size": 2,
        "padding": "valid",
        "pool": "max",
        "head": "flatten",
        "hidden": 256,
    }
    options.update(kwargs)
    return ConvNet(channels=[width] * depth, **options)


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: builder, preset arguments, a description and its source."""

    name: str
    builder: Callable[..., nn.Module]
    preset: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    source: str = ""

    def arguments(self) -> dict[str, Any]:
        """Every keyword the builder takes, with the preset's values over its defaults."""
        params = inspect.signature(self.builder).parameters
        defaults = {n: p.default for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            # A family builder forwards its **kwargs to ConvNet and sets 'channels' itself.
            inherited = {k: v for k, v in _convnet_defaults().items() if k != "channels"}
            defaults = {**inherited, **defaults}
        defaults.update(self.preset)
        return defaults


def _convnet_defaults() -> dict[str, Any]:
    params = inspect.signature(ConvNet).parameters
    return {n: p.default for n, p in params.items() if p.kind is p.KEYWORD_ONLY}


MODELS: Registry[ModelEntry] = Registry("model")


def register_model(
    name: str,
    builder: Callable[..., nn.Module],
    preset: dict[str, Any] | None = None,
    description: str = "",
    source: str = "",
) -> None:
    """Add a model to the registry (the CLI, configs and contract tests see it at once)."""
    MODELS.register(name, ModelEntry(name, builder, dict(preset or {}), description, source))


register_model(
    "cnn",
    ConvNet,
    {},
    "configurable CNN: (Conv3x3+ReLU+MaxPool) x [32,64,128], flatten, FC128",
    "generic",
)
register_model(
    "small-cnn",
    ConvNet,
    {"channels": [32, 64, 128], "pool": "max", "head": "gap", "hidden": [128]},
    "(Conv+ReLU+MaxPool) x3 [32,64,128] + AvgPool + FC128 + ReLU + FC",
    "seed 002's CNN; seed 000's '32 64 128' over-fitting model (111,050 params on CIFAR-10)",
)
register_model(
    "large-cnn",
    ConvNet,
    {"channels": [64, 128, 256], "pool": "max", "head": "gap", "hidden": [256]},
    "(Conv+ReLU+MaxPool) x3 [64,128,256] + AvgPool + FC256 + ReLU + FC",
    "seed 000's '64 128 256' over-fitting model (439,178 params on CIFAR-10)",
)
register_model(
    "grid-cnn",
    ConvNet,
    {"channels": [32, 64, 128], "batch_norm": True, "pool": "avg", "head": "gap", "hidden": [128]},
    "3 blocks [32,64,128] with batch-norm and average pooling",
    "seed 000's grid-search model",
)
register_model(
    "reference-cnn",
    ConvNet,
    {
        "channels": [64, 128, 256],
        "padding": "valid",
        "batch_norm": True,
        "pool": "avg",
        "head": "flatten",
        "hidden": [256],
    },
    "3 'valid' 3x3 blocks [64,128,256] with batch-norm, average pooling, flatten, FC256",
    "seed 000's transfer target (635,786 params on CIFAR-10 without batch-norm's 896; 438,922 "
    "with it on 28x28)",
)
register_model(
    "surrogate-cnn",
    surrogate_cnn,
    {},
    "depth x width family: 2x2 'valid' convs, max-pooling, flatten, FC256",
    "seed 000's transfer surrogates (depth 1-4, width 8-512)",
)
register_model(
    "mnist-cnn",
    ConvNet,
    {"channels": [32, 64], "head": "flatten", "hidden": [128]},
    "Conv32-Conv64-FC128 with max-pooling: the benchmark reference",
    "DESIGN.md benchmarks",
)
register_model(
    "twoconv-bn-cnn",
    ConvNet,
    {"channels": [32, 64], "kernel_size": 5, "batch_norm": True, "hidden": []},
    "two 5x5 conv blocks with batch-norm and max-pooling, one dense layer",
    "seed 004 classifiers C1/C2",
)
register_model(
    "mlp",
    MLP,
    {"hidden": [512]},
    "fully connected: flatten, 512 ReLU units, output",
    "seed 003 (407,050 params on MNIST)",
)
register_model(
    "resnet18",
    ResNet18,
    {},
    "ResNet-18 for 32x32 inputs (3x3 stem, no max-pool)",
    "CIFAR-10 standard (11,173,962 params)",
)


def build_model(
    name: str, *, in_shape: Sequence[int], num_classes: int, **overrides: Any
) -> nn.Module:
    """Build registered model ``name`` for inputs of ``in_shape`` (C, H, W).

    ``overrides`` replace preset arguments (for example ``dropout=0.3`` or ``width=128``);
    unknown ones are a TypeError naming the choices. ``quantize='tanh:8'`` (or 'bits:3') puts a
    quantization layer in front of any model. The returned module carries ``spec``.
    """
    if name not in MODELS:
        raise unknown_name_error("model", name, MODELS)
    entry = MODELS[name]
    allowed = (set(entry.arguments()) - {"in_shape", "num_classes"}) | {"quantize"}
    check_keywords(f"model {name!r}", overrides, allowed)
    kwargs = {**entry.preset, **overrides}
    quantize = kwargs.pop("quantize", None)
    model = entry.builder(
        in_shape=tuple(int(s) for s in in_shape), num_classes=num_classes, **kwargs
    )
    if quantize is not None:
        model = QuantizedModel(parse_quantize(quantize), model)
        kwargs["quantize"] = quantize
    model.spec = {  # type: ignore[assignment]  # nn.Module.__setattr__ is typed for tensors
        "name": name,
        "in_shape": [int(s) for s in in_shape],
        "num_classes": int(num_classes),
        "kwargs": kwargs,
    }
    return model


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters, as Keras' summary counts them."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
