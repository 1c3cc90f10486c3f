"""The data a trained model goes with: what its metadata records, or other data checked to fit.

One function serves every command and the sweep engine: the dataset a checkpoint records (name
and loader options, with overrides on top), another registered dataset by name, or a folder or
archive of the user's own images; in every case the images' shape and class count are checked
against the model's before anything runs.
"""

from __future__ import annotations

import os
from typing import Any

from saddlepoint.data.base import ImageData
from saddlepoint.data.registry import load_dataset


def dataset_for(
    metadata: dict[str, Any],
    name: str | None = None,
    *,
    options: dict[str, Any] | None = None,
    files: str | os.PathLike[str] | None = None,
    size: int | None = None,
    limit: int | None = None,
) -> ImageData:
    """The dataset for a model with checkpoint ``metadata``: the one it records, with
    ``options`` over its recorded loader options; or registered dataset ``name`` (the recorded
    options apply only when it is the recorded one); or the images in ``files`` (resized to
    ``size``, the first ``limit`` read). A dataset that does not fit the model is a ValueError."""
    if files is not None:
        from saddlepoint.data.files import load_files

        if name is not None:
            raise ValueError("Give a dataset name or image files, not both.")
        data = load_files(files, size=size, limit=limit)
        check_fits(metadata, data, os.fspath(files))
        return data
    recorded = metadata.get("dataset", {})
    name = name or recorded.get("name")
    if name is None:
        raise ValueError("The checkpoint records no dataset; name one (or give image files).")
    base = dict(recorded.get("options", {})) if name == recorded.get("name") else {}
    data = load_dataset(name, **{**base, **(options or {})})
    check_fits(metadata, data, name)
    return data


def check_fits(metadata: dict[str, Any], data: ImageData, source: str) -> None:
    """The model's input shape and class count (from its metadata) must be the data's."""
    spec = metadata.get("model", {})
    shape, classes = spec.get("in_shape"), spec.get("num_classes")
    if shape is not None and list(shape) != list(data.shape):
        raise ValueError(
            f"The model takes inputs of shape {tuple(shape)} but {source!r} has images of shape "
            f"{tuple(data.shape)}; use the dataset it was trained on (or its size option)."
        )
    if classes is not None and int(classes) < data.num_classes:
        raise ValueError(f"The model has {classes} classes but {source!r} has {data.num_classes}.")
