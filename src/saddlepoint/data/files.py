"""A user's own evaluation data: an image folder (one sub-folder per class) or a ``.npz`` file.

    folder/cat/001.png, folder/dog/7.jpg, ...   classes in sorted folder-name order
    data.npz with arrays images (or x) and labels (or y)
    folder/images.npy + folder/labels.npy        memory-mapped: a limit reads only those images

Class folders named by numbers (``0/``, ``3/``, ``7/``) keep those numbers as labels, so a
folder holding some of a model's classes is read in the model's numbering; other names are
numbered in sorted order.
16-bit grey images are scaled by 65535. A read that would allocate more than
``MAX_ARRAY_BYTES`` is refused before it starts (an ``.npz`` decompresses only the rows a
``limit`` asks for).

Images become float32 in [0, 1], shape (N, C, H, W): uint8 arrays are divided by 255, float
arrays must already be in [0, 1], channel-last arrays (N, H, W, 1 or 3) are transposed, and
(N, H, W) gains a channel. Folder images are read with Pillow as grey when every one is grey,
else RGB, and must share one size unless ``size`` asks for a resize. Folder images come in class
turns (the first image of each class, then the second of each, ...), so the first N of them, a
``limit``, cover every class; only those N are decoded, straight into one array (headers are read
first), with a progress bar for large folders. The data are for evaluating a model, so every split
of the result (train, val and test) is the whole set, in that order.
Every check names the file and what was expected.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from saddlepoint.data.base import ImageData, Split

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
_IMAGE_KEYS = ("images", "x", "data")
_LABEL_KEYS = ("labels", "y", "targets")
MAX_ARRAY_BYTES = 4 << 30  # what one read may allocate for the user's images
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I")  # grey modes with more than 8 bits


def load_files(
    path: str | os.PathLike[str], *, size: int | None = None, limit: int | None = None
) -> ImageData:
    """The images and labels at ``path`` (a class-per-folder tree or an ``.npz`` file), the first
    ``limit`` of them when given, resized to ``size`` x ``size`` when given."""
    source = Path(path)
    if limit is not None and limit < 1:
        raise ValueError(f"The 'limit' for {source} must be at least 1. Got {limit} instead.")
    pair = _npy_pair(source)
    if pair is not None or (source.suffix == ".npz" and source.is_file()):
        images, labels = _read_npy(*pair, limit) if pair else _read_npz(source, limit)
        names = tuple(str(i) for i in range(int(labels.max()) + 1))
        if size is not None:
            images = _resize(images, size)
    elif source.is_dir():
        images, labels, names = _read_folder(source, size, limit)
    elif not source.exists():
        raise FileNotFoundError(f"The data path {source} does not exist.")
    else:
        raise ValueError(
            f"The data path {source} must be a folder of class sub-folders (ImageFolder layout), "
            "a folder with images.npy and labels.npy, or an .npz file with 'images' and 'labels' "
            f"arrays. Got a {source.suffix or 'plain'} file."
        )
    split = Split(images, labels)
    return ImageData(
        name=f"files:{source.name}",
        train=split,
        val=split,
        test=split,
        class_names=names,
        source=str(source),
        options={"path": str(source), "size": size, "limit": limit},
    )


def _npy_pair(source: Path) -> tuple[Path, Path] | None:
    """images.npy and labels.npy: in the folder ``source``, or ``source`` is images.npy."""
    folder = source if source.is_dir() else source.parent
    if source.is_file() and source.suffix != ".npy":
        return None
    images, labels = folder / "images.npy", folder / "labels.npy"
    if source.is_file() and source.name != "images.npy":
        raise ValueError(
            f"{source}: a .npy pair must be named images.npy and labels.npy, in one folder."
        )
    if images.is_file() and not labels.is_file():
        raise ValueError(f"{images} has no labels.npy beside it.")
    return (images, labels) if images.is_file() else None


def _read_npy(
    images_path: Path, labels_path: Path, limit: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A memory-mapped pair: only the first ``limit`` images are read from disk."""
    arrays = []
    for path in (images_path, labels_path):
        try:
            arrays.append(np.load(path, mmap_mode="r", allow_pickle=False))
        except (OSError, ValueError) as error:
            raise ValueError(f"{path} is not a readable .npy file ({error}).") from None
    images, labels = arrays
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels."
        )
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    # np.array copies the mapped rows into memory (writable, as torch wants).
    return _as_images(np.array(images), images_path), _as_labels(
        np.array(labels), len(images), labels_path
    )


def _read_npz(path: Path, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` images and labels of an ``.npz``, decompressing only those rows: a
    small compressed file can declare gigabytes."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a readable .npz file ({error}).") from None
    with archive:
        members = {n.removesuffix(".npy"): n for n in archive.namelist() if n.endswith(".npy")}
        image_key = next((k for k in _IMAGE_KEYS if k in members), None)
        label_key = next((k for k in _LABEL_KEYS if k in members), None)
        if image_key is None or label_key is None:
            raise ValueError(
                f"{path} must hold an images array (named {' or '.join(_IMAGE_KEYS)}) and a labels "
                f"array (named {' or '.join(_LABEL_KEYS)}). It holds: "
                f"{', '.join(members) or 'nothing'}."
            )
        images = _npz_rows(archive, members[image_key], limit, path)
        labels = _npz_rows(archive, members[label_key], limit, path)
    return _as_images(images, path), _as_labels(labels, len(images), path)


def _npz_rows(archive: zipfile.ZipFile, member: str, limit: int | None, path: Path) -> np.ndarray:
    """The first ``limit`` rows of one array of an ``.npz``, read from its header on."""
    with archive.open(member) as stream:
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        except ValueError as error:
            raise ValueError(f"{path}: {member} is not a .npy array ({error}).") from None
        if dtype.hasobject:
            raise ValueError(
                f"{path}: {member} holds Python objects, which would need pickle (refused); "
                "store plain numeric arrays."
            )
        rows = shape[0] if not shape or limit is None or fortran else min(limit, shape[0])
        count = int(np.prod((rows, *shape[1:]))) if shape else 1
        size = count * dtype.itemsize
        if size > MAX_ARRAY_BYTES:
            raise ValueError(
                f"{path}: {member} of shape {shape} would take {size / 2**30:.1f} GiB once "
                f"decompressed (at most {MAX_ARRAY_BYTES / 2**30:.0f} GiB are read at once); "
                "give a limit (--limit) to read only the first images."
            )
        data = stream.read(size)
    if len(data) != size:
        raise ValueError(f"{path}: {member} is cut short ({len(data)} of {size} bytes).")
    array = np.frombuffer(data, dtype=dtype).copy()
    if fortran:
        return array.reshape(shape[::-1]).transpose()[: limit or None]
    return array.reshape((rows, *shape[1:]) if shape else ())


def _as_images(array: np.ndarray, path: Path) -> torch.Tensor:
    """An image array as float32 (N, C, H, W) in [0, 1]; refuse what cannot be that."""
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise ValueError(
            f"{path}: images must have shape (N, H, W), (N, C, H, W) or (N, H, W, C). Got "
            f"{array.shape} instead."
        )
    if array.shape[1] not in (1, 3) and array.shape[3] in (1, 3):
        array = array.transpose(0, 3, 1, 2)
    if array.dtype == np.uint8:
        images = torch.from_numpy(np.ascontiguousarray(array)).float() / 255.0
    elif np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer):
        images = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    else:
        raise ValueError(f"{path}: images must be numbers. Got dtype {array.dtype} instead.")
    if len(images) == 0:
        raise ValueError(f"{path} holds no images.")
    if not bool(torch.isfinite(images).all()):
        raise ValueError(f"{path}: the images hold NaN or infinite values.")
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 1:
        raise ValueError(
            f"{path}: images must be uint8 (0-255) or numbers in [0, 1]. Got values in "
            f"[{low:g}, {high:g}]; rescale them (attacks work in [0, 1] pixels)."
        )
    return images


def _as_labels(array: np.ndarray, count: int, path: Path) -> torch.Tensor:
    if array.shape != (count,) or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"{path}: labels must be {count} whole numbers, one per image. Got shape {array.shape} "
            f"of dtype {array.dtype} instead."
        )
    if count and int(array.min()) < 0:
        raise ValueError(
            f"{path}: labels must be class indices of at least 0. Found {array.min()}."
        )
    return torch.from_numpy(array.astype(np.int64))


def _read_folder(
    root: Path, size: int | None, limit: int | None
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    from PIL import Image, UnidentifiedImageError
    from tqdm.auto import tqdm

    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    numbered = bool(classes) and all(name.isdecimal() for name in classes)
    if numbered:  # folders named by class index keep that index, even when some are absent
        classes.sort(key=int)
    if not classes:
        raise ValueError(
            f"{root} has no class sub-folders: put each class's images in a folder named after it "
            "(root/cat/1.png, root/dog/2.png)."
        )
    per_class = [
        [p for p in sorted((root / name).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        for name in classes
    ]
    # Classes taken in turn, so the first N images (a --limit) cover every class.
    files = [
        (index, paths[rank])
        for rank in range(max(len(paths) for paths in per_class))
        for index, paths in enumerate(per_class)
        if rank < len(paths)
    ]
    if not files:
        raise ValueError(f"{root}: its class folders hold no {', '.join(IMAGE_SUFFIXES)} images.")
    if limit is not None:
        files = files[:limit]
    # Headers first (no pixels decoded): the colour mode and size of the whole set, so the
    # pixels go straight into one uint8 array, each image decoded once.
    headers = []
    for _, path in files:
        try:
            with Image.open(path) as picture:
                headers.append((picture.mode, picture.size))
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
            raise ValueError(f"{path} is not a readable image ({error}).") from None
    grey = all(mode in ("1", "L", "F", *_SIXTEEN_BIT) for mode, _ in headers)
    deep = grey and any(mode in _SIXTEEN_BIT for mode, _ in headers)
    mode = "L" if grey else "RGB"
    width, height = (size, size) if size is not None else headers[0][1]
    needed = len(files) * width * height * (1 if grey else 3) * (4 if deep else 1)
    if needed > MAX_ARRAY_BYTES:
        raise ValueError(
            f"{root}: {len(files)} images of {width}x{height} would take "
            f"{needed / 2**30:.1f} GiB (at most {MAX_ARRAY_BYTES / 2**30:.0f} GiB are read at "
            "once); give a limit (--limit) or a smaller size."
        )
    if size is None:
        for (_, path), (_, found) in zip(files, headers):
            if found != headers[0][1]:
                raise ValueError(
                    f"{path} is {found[0]}x{found[1]} but {files[0][1]} is "
                    f"{width}x{height}; give a size to resize them all."
                )
    # 16-bit grey is scaled by 65535 into floats: converting it to 8-bit "L" saturates it.
    shape = (len(files), height, width) + (() if grey else (3,))
    pixels = np.empty(shape, dtype=np.float32 if deep else np.uint8)
    bar = tqdm(files, desc=f"reading {root.name}", unit="img", disable=len(files) < 2000)
    for position, (_, path) in enumerate(bar):
        try:
            with Image.open(path) as picture:
                if deep:
                    wide = picture.mode in _SIXTEEN_BIT
                    converted = picture.convert("F") if wide else picture.convert(mode)
                    scale = 65535.0 if wide else 255.0
                else:
                    converted, scale = picture.convert(mode), 1.0
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"{path} is not a readable image ({error}).") from None
        if size is not None:
            converted = converted.resize((size, size), Image.Resampling.BILINEAR)
        pixels[position] = (
            np.asarray(converted, dtype=pixels.dtype) / scale
            if deep
            else (np.asarray(converted, dtype=np.uint8))
        )
    if deep:
        pixels = np.clip(pixels, 0.0, 1.0)
    images = _as_images(pixels if not grey else pixels[:, None], root)
    label_of = [int(name) for name in classes] if numbered else list(range(len(classes)))
    labels = torch.tensor([label_of[index] for index, _ in files], dtype=torch.int64)
    if numbered:
        return images, labels, tuple(str(i) for i in range(max(label_of) + 1))
    return images, labels, tuple(classes)


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    import torch.nn.functional as F

    resized = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return resized.clamp_(0.0, 1.0)
