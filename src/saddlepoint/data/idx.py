"""The IDX format of MNIST and Fashion-MNIST (LeCun et al.), read and written.

Header: two zero bytes, a type code (0x08 = uint8), the number of dimensions, then each
dimension as a big-endian uint32; the data follow in C order. Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from saddlepoint.fileio import atomic_path

_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}

# The four files of a standard MNIST-style release.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes (gzip-compressed or not) into a numpy array."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as error:
            raise ValueError(
                f"{source} is truncated or corrupt ({error}); delete it and fetch it again."
            ) from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _TYPES:
        raise ValueError(f"{source} is not an IDX file (bad magic number {data[:4].hex()}).")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype: np.dtype = np.dtype(_TYPES[data[2]])  # type: ignore[call-overload]  # dict of dtype names
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"{source} is truncated or corrupt: its header promises shape {shape} "
            f"({expected} bytes of data) but it holds {len(data) - header}."
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).copy()


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (``.gz`` or plain) into a numpy array."""
    return parse_idx(Path(path).read_bytes(), source=str(path))


def write_idx(
    path: str | os.PathLike[str], array: np.ndarray, compress: bool | None = None
) -> None:
    """Write ``array`` (uint8 or int8) as an IDX file, gzip-compressed if the name ends in .gz."""
    array = np.ascontiguousarray(array)
    if array.dtype not in _CODES:
        raise ValueError(f"write_idx supports uint8 and int8 arrays. Got {array.dtype} instead.")
    header = bytes([0, 0, _CODES[array.dtype], array.ndim]) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    payload = header + array.tobytes()
    if compress if compress is not None else str(path).endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    with atomic_path(path) as temp:
        temp.write_bytes(payload)


def find_idx_file(folder: Path, stem: str) -> Path | None:
    """The file for ``stem`` in ``folder``, plain or .gz, also under the 'x.idx3-ubyte' spelling."""
    candidates = [
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ]
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx_release(folder: Path) -> dict[str, np.ndarray] | None:
    """The four arrays of an MNIST-style release in ``folder``, or None if a file is missing."""
    paths = {key: find_idx_file(folder, stem) for key, stem in IDX_FILES.items()}
    found = {key: path for key, path in paths.items() if path is not None}
    if len(found) < len(paths):
        return None
    return {key: read_idx(path) for key, path in found.items()}
