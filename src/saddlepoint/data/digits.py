"""scikit-learn's bundled 8x8 handwritten digits: the dataset that always works offline."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from saddlepoint.data.base import ImageData, three_way_split
from saddlepoint.validation import check_number


def load_digits(
    *, size: int = 8, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2
) -> ImageData:
    """1,797 digits (values 0..16 scaled to [0, 1]), optionally upsampled to ``size`` x ``size``.

    Splits are drawn by a seeded permutation: ``test_fraction`` for test, ``val_fraction`` for
    validation, the rest for training.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    check_number("digits", "size", size, low=8, high=256, integer=True)
    bunch = sklearn_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        images = images.clamp_(0.0, 1.0)
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    train, val, test = three_way_split(images, labels, val_fraction, test_fraction, seed)
    return ImageData(
        name="digits",
        train=train,
        val=val,
        test=test,
        class_names=tuple(str(i) for i in range(10)),
        source="scikit-learn (bundled)",
        options={
            "size": size,
            "seed": seed,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
        },
    )
