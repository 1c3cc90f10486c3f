"""Training: the loop, its config and its history."""

from saddlepoint.train.config import TrainConfig
from saddlepoint.train.history import EpochRecord, History
from saddlepoint.train.recipe import TrainedClassifier, train_classifier
from saddlepoint.train.trainer import BatchTransform, make_optimizer, train_model

__all__ = [
    "BatchTransform",
    "EpochRecord",
    "History",
    "TrainConfig",
    "TrainedClassifier",
    "make_optimizer",
    "train_classifier",
    "train_model",
]
