"""Training: the loop, its config and its history."""

from saddlepoint.train.config import TrainConfig
from saddlepoint.train.defense import BatchTransform, TrainingDefense
from saddlepoint.train.history import EpochRecord, History
from saddlepoint.train.recipe import TrainedClassifier, train_classifier
from saddlepoint.train.trainer import make_optimizer, recipe_tag, train_model

__all__ = [
    "BatchTransform",
    "EpochRecord",
    "History",
    "TrainConfig",
    "TrainedClassifier",
    "TrainingDefense",
    "make_optimizer",
    "recipe_tag",
    "train_classifier",
    "train_model",
]
