"""Build, train, evaluate and describe a classifier in one call (the CLI and demo use it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from saddlepoint.data.base import ImageData
from saddlepoint.evaluate.metrics import evaluate_split
from saddlepoint.models.preprocess import channel_stats
from saddlepoint.models.registry import build_model
from saddlepoint.seeding import seeded
from saddlepoint.train.config import TrainConfig
from saddlepoint.train.defense import BatchTransform, TrainingDefense
from saddlepoint.train.history import History
from saddlepoint.train.trainer import recipe_tag, train_model


@dataclass
class TrainedClassifier:
    """A trained model with its history and test metrics, ready to checkpoint."""

    model: nn.Module
    history: History
    test_metrics: dict[str, Any]
    metadata: dict[str, Any]


def train_classifier(
    data: ImageData,
    model_name: str,
    config: TrainConfig | None = None,
    *,
    model_args: dict[str, Any] | None = None,
    normalize: bool = True,
    dataset_options: dict[str, Any] | None = None,
    transform: TrainingDefense | BatchTransform | None = None,
    progress: bool = True,
    resume: Path | None = None,
    resume_tag: str = "",
) -> TrainedClassifier:
    """Build ``model_name`` for ``data`` (normalized with train-split statistics), train it and
    evaluate it on the test split. Weights are initialized under ``config.seed``; ``resume``
    keeps the loop state after each epoch (see :func:`train_model`), resumed only by a call
    with the same ``resume_tag`` (by default a digest of every argument that shapes the
    weights: the data, the model and its arguments, the config and the transform)."""
    config = config or TrainConfig()
    if resume is not None and not resume_tag:
        resume_tag = recipe_tag(
            {
                "data": [data.name, dataset_options or {}, len(data.train), list(data.shape)],
                "model": [model_name, model_args or {}, normalize],
                "config": config.to_dict(),
                "transform": _describe(transform),
            }
        )
    args = dict(model_args or {})
    if normalize and "mean" not in args:
        args["mean"], args["std"] = channel_stats(data.train.images)
    with seeded(config.seed):
        model = build_model(model_name, in_shape=data.shape, num_classes=data.num_classes, **args)
    history = train_model(
        model,
        data,
        config,
        transform=transform,
        progress=progress,
        resume=resume,
        resume_tag=resume_tag,
    )
    test = evaluate_split(model, data.test, data.num_classes)
    metadata = {
        "dataset": {
            "name": data.name,
            "options": {k: v for k, v in (dataset_options or {}).items() if k != "download"},
            "class_names": list(data.class_names),
            "shape": list(data.shape),
        },
        "train": config.to_dict(),
        "history": history.to_dict(),
        "metrics": {
            "test": {k: test[k] for k in ("loss", "accuracy", "mean_confidence", "count")},
        },
    }
    return TrainedClassifier(model, history, test, metadata)


def _describe(transform: Any) -> Any:
    """What a training transform contributes to the resume tag: its settings where it has a
    ``config()``, else its kind (a plain function's repr holds its address, different per run)."""
    if transform is None:
        return None
    if callable(getattr(transform, "config", None)):
        return transform.config()
    return getattr(transform, "__qualname__", type(transform).__qualname__)
