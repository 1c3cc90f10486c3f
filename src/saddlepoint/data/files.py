"""A user's own evaluation data: an image folder (one sub-folder per class) or a ``.npz`` file.

    folder/cat/001.png, folder/dog/7.jpg, ...   classes in sorted folder-name order
    data.npz with arrays images (or x) and labels (or y)

Images become float32 in [0, 1], shape (N, C, H, W): uint8 arrays are divided by 255, float
arrays must already be in [0, 1], channel-last arrays (N, H, W, 1 or 3) are transposed, and
(N, H, W) gains a channel. Folder images are read with Pillow as grey when every one is grey,
else RGB, and must share one size unless ``size`` asks for a resize. The data are for evaluating
a model, so every split of the result (train, val and test) is the whole file, in file order.
Every check names the file and what was expected.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from saddlepoint.data.base import ImageData, Split

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
_IMAGE_KEYS = ("images", "x", "data")
_LABEL_KEYS = ("labels", "y", "targets")


def load_files(
    path: str | os.PathLike[str], *, size: int | None = None, limit: int | None = None
) -> ImageData:
    """The images and labels at ``path`` (a class-per-folder tree or an ``.npz`` file), the first
    ``limit`` of them when given, resized to ``size`` x ``size`` when given."""
    source = Path(path)
    if limit is not None and limit < 1:
        raise ValueError(f"The 'limit' for {source} must be at least 1. Got {limit} instead.")
    if source.is_dir():
        images, labels, names = _read_folder(source, size, limit)
    elif source.suffix == ".npz" and source.is_file():
        images, labels = _read_npz(source, limit)
        names = tuple(str(i) for i in range(int(labels.max()) + 1))
        if size is not None:
            images = _resize(images, size)
    elif not source.exists():
        raise FileNotFoundError(f"The data path {source} does not exist.")
    else:
        raise ValueError(
            f"The data path {source} must be a folder of class sub-folders (ImageFolder layout) "
            f"or an .npz file with 'images' and 'labels' arrays. Got a {source.suffix or 'plain'} "
            "file."
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


def _read_npz(path: Path, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable .npz file ({error}).") from None
    with archive:
        keys = list(archive.keys())
        image_key = next((k for k in _IMAGE_KEYS if k in keys), None)
        label_key = next((k for k in _LABEL_KEYS if k in keys), None)
        if image_key is None or label_key is None:
            raise ValueError(
                f"{path} must hold an images array (named {' or '.join(_IMAGE_KEYS)}) and a labels "
                f"array (named {' or '.join(_LABEL_KEYS)}). It holds: {', '.join(keys) or 'nothing'}."
            )
        try:
            images, labels = archive[image_key], archive[label_key]
        except ValueError as error:  # object arrays need pickle, which is refused
            raise ValueError(f"{path}: {error}; store plain numeric arrays.") from None
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return _as_images(images, path), _as_labels(labels, len(images), path)


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

    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(
            f"{root} has no class sub-folders: put each class's images in a folder named after it "
            "(root/cat/1.png, root/dog/2.png)."
        )
    files = [
        (index, path)
        for index, name in enumerate(classes)
        for path in sorted((root / name).iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise ValueError(f"{root}: its class folders hold no {', '.join(IMAGE_SUFFIXES)} images.")
    if limit is not None:
        files = files[:limit]
    pictures: list[Image.Image] = []
    for _, path in files:
        try:
            with Image.open(path) as picture:
                picture.load()
                pictures.append(picture.copy())
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"{path} is not a readable image ({error}).") from None
    grey = all(p.mode in ("1", "L", "I", "I;16", "F") for p in pictures)
    mode = "L" if grey else "RGB"
    arrays = []
    for (_, path), original in zip(files, pictures):
        converted = original.convert(mode)
        if size is not None:
            converted = converted.resize((size, size), Image.Resampling.BILINEAR)
        elif converted.size != pictures[0].size:
            raise ValueError(
                f"{path} is {converted.size[0]}x{converted.size[1]} but {files[0][1]} is "
                f"{pictures[0].size[0]}x{pictures[0].size[1]}; give a size to resize them all."
            )
        arrays.append(np.asarray(converted, dtype=np.uint8))
    stacked = np.stack(arrays)
    images = _as_images(stacked if not grey else stacked[:, None], root)
    labels = torch.tensor([index for index, _ in files], dtype=torch.int64)
    return images, labels, tuple(classes)


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    import torch.nn.functional as F

    resized = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return resized.clamp_(0.0, 1.0)
