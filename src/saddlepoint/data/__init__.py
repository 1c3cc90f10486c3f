"""Datasets as float images in [0, 1], NCHW, with fixed seeded train/val/test splits."""

from saddlepoint.data.base import ImageData, Split
from saddlepoint.data.paths import DatasetNotFoundError, data_root
from saddlepoint.data.recorded import dataset_for
from saddlepoint.data.registry import DATASETS, from_tensors, load_dataset, register_dataset

__all__ = [
    "DATASETS",
    "DatasetNotFoundError",
    "ImageData",
    "Split",
    "data_root",
    "dataset_for",
    "from_tensors",
    "load_dataset",
    "register_dataset",
]
