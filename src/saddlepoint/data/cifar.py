"""CIFAR-10 in its standard python-batches format (Krizhevsky, 2009).

``cifar-10-batches-py/`` holds ``data_batch_1..5`` and ``test_batch`` (pickled dicts with
b'data' (10000, 3072) uint8 in CHW order and b'labels') and ``batches.meta``. The pickles are read
with an unpickler that only rebuilds arrays.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from saddlepoint.data import safe_pickle
from saddlepoint.data.base import ImageData, Split, from_official_split
from saddlepoint.data.download import DownloadError, extract_tar, fetch
from saddlepoint.data.paths import DatasetNotFoundError, data_root

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as handle:
        batch = safe_pickle.load(handle, encoding="bytes", source=str(path))
    if not isinstance(batch, dict):
        raise ValueError(f"{path} is not a CIFAR-10 batch: it holds a {type(batch).__name__}.")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"{path} is not a CIFAR-10 batch: it has no 'data' and 'labels' entries.")
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: expected data of shape (N, 3072). Got {data.shape} instead.")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def _read_split(folder: Path, names: tuple[str, ...]) -> Split:
    parts = [_read_batch(folder / name) for name in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return Split(torch.from_numpy(images).float().div_(255.0), torch.from_numpy(labels))


def _has_batches(folder: Path) -> bool:
    return all((folder / name).is_file() for name in (*TRAIN_BATCHES, "test_batch"))


def download_cifar10(
    root: str | os.PathLike[str] | None = None,
    *,
    url: str = CIFAR10_URL,
    sha256: str = CIFAR10_SHA256,
    progress: bool = True,
) -> Path:
    """Fetch and verify the tar.gz, then extract it; return the batches folder."""
    folder = data_root(root) / "cifar10"
    archive = fetch(url, folder / "cifar-10-python.tar.gz", sha256, progress=progress)
    extract_tar(archive, folder)
    if not _has_batches(folder / BATCH_DIR):
        raise DownloadError(f"{archive} did not contain {BATCH_DIR}/ with the six batches.")
    return folder / BATCH_DIR


def load_cifar10(
    *,
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    val_size: int = 5000,
    download: bool = False,
    url: str = CIFAR10_URL,
    sha256: str = CIFAR10_SHA256,
) -> ImageData:
    """CIFAR-10: 50,000 training (``val_size`` held out for validation) and 10,000 test images."""
    folder = data_root(root) / "cifar10" / BATCH_DIR
    if not _has_batches(folder):
        if not download:
            raise DatasetNotFoundError(
                "cifar10",
                [f"{folder} (data_batch_1..5, test_batch)"],
                f"Pass download=True (CLI: --download) to fetch {url} (170 MB, SHA-256 checked), "
                "or extract cifar-10-python.tar.gz there.",
            )
        try:
            download_cifar10(root, url=url, sha256=sha256)
        except DownloadError as error:
            raise DatasetNotFoundError(
                "cifar10", [str(folder)], f"The download failed: {error}"
            ) from error
    train = _read_split(folder, TRAIN_BATCHES)
    test = _read_split(folder, ("test_batch",))
    return from_official_split("cifar10", train, test, CIFAR10_CLASSES, str(folder), val_size, seed)
