"""The in-memory form every dataset takes: float images in [0, 1], NCHW, integer labels."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Split:
    """One split of a dataset: ``images`` (N, C, H, W) float32 in [0, 1], ``labels`` (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dim() != 4:
            raise ValueError(
                f"Split images must be a 4-d tensor (N, C, H, W). Got shape "
                f"{tuple(self.images.shape)} instead."
            )
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"Split labels must have shape ({self.images.shape[0]},) to match the images. "
                f"Got {tuple(self.labels.shape)} instead."
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:  # the tensors' values would fill a screen
        return f"Split({len(self)} images of shape {tuple(self.images.shape[1:])})"

    def head(self, n: int | None, name: str = "limit") -> Split:
        """The first ``n`` examples (all of them when ``n`` is None). ``n`` must be a whole
        number of at least 1 (a negative one would act as a Python slice from the end)."""
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(
                f"The {name!r} option must be a whole number of at least 1 (or left out for all "
                f"{len(self)} images). Got {n!r} instead."
            )
        if n is None or n >= len(self):
            return self
        return Split(self.images[:n], self.labels[:n])

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        with_index: bool = False,
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        """Yield (images, labels) mini-batches, shuffled with ``generator`` when asked; with
        ``with_index`` also the examples' positions in this split."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else None
        for start in range(0, n, batch_size):
            if order is not None:
                index = order[start : start + batch_size]
                batch = (self.images[index], self.labels[index])
            else:  # plain slices: no copy
                index = torch.arange(start, min(start + batch_size, n))
                batch = (
                    self.images[start : start + batch_size],
                    self.labels[start : start + batch_size],
                )
            yield (*batch, index) if with_index else batch


@dataclass(frozen=True)
class ImageData:
    """A dataset with fixed train/val/test splits and the names of its classes."""

    name: str
    train: Split
    val: Split
    test: Split
    class_names: tuple[str, ...]
    source: str = ""
    options: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"ImageData({self.name!r}, {self.num_classes} classes, images {self.shape}, "
            f"train {len(self.train)}, val {len(self.val)}, test {len(self.test)})"
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        c, h, w = self.train.images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split(self, name: str) -> Split:
        """The split called ``name`` ('train', 'val' or 'test')."""
        if name not in ("train", "val", "test"):
            raise ValueError(
                f"The 'split' parameter must be one of ['train', 'val', 'test']. Got {name!r} instead."
            )
        return getattr(self, name)

    def describe(self) -> dict:
        """A JSON-friendly summary: sizes, shape, classes, source."""
        return {
            "name": self.name,
            "source": self.source,
            "shape": list(self.shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test),
            "options": dict(self.options),
        }


def seeded_permutation(n: int, seed: int) -> torch.Tensor:
    """A permutation of range(n) that depends only on ``seed`` (the global RNG is untouched)."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=generator)


def split_off(split: Split, size: int, seed: int) -> tuple[Split, Split]:
    """Split ``split`` into (rest, held-out of ``size`` examples) by a seeded permutation."""
    if not 0 < size < len(split):
        raise ValueError(
            f"The 'val_size' parameter must be an int in the range (0, {len(split)}). "
            f"Got {size!r} instead."
        )
    order = seeded_permutation(len(split), seed)
    held, rest = order[:size], order[size:]
    return (
        Split(split.images[rest], split.labels[rest]),
        Split(split.images[held], split.labels[held]),
    )


def three_way_split(
    images: torch.Tensor, labels: torch.Tensor, val_fraction: float, test_fraction: float, seed: int
) -> tuple[Split, Split, Split]:
    """Split one pool of examples into train/val/test by fractions, under ``seed``."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 1:
            raise ValueError(
                f"The {name!r} parameter must be a float in the range (0, 1). Got {value!r} instead."
            )
    if val_fraction + test_fraction >= 1:
        raise ValueError(
            "The 'val_fraction' and 'test_fraction' parameters must sum to less than 1. "
            f"Got {val_fraction} + {test_fraction} instead."
        )
    n = labels.shape[0]
    n_test = max(1, round(n * test_fraction))
    n_val = max(1, round(n * val_fraction))
    order = seeded_permutation(n, seed)
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    return (
        Split(images[train], labels[train]),
        Split(images[val], labels[val]),
        Split(images[test], labels[test]),
    )


def from_official_split(
    name: str,
    train: Split,
    test: Split,
    class_names: tuple[str, ...],
    source: str,
    val_size: int,
    seed: int,
) -> ImageData:
    """An ImageData from a release's own train/test split, holding ``val_size`` of train out."""
    train, val = split_off(train, val_size, seed)
    return ImageData(
        name=name,
        train=train,
        val=val,
        test=test,
        class_names=class_names,
        source=source,
        options={"val_size": val_size, "seed": seed},
    )
