"""Checkpoints: weights in safetensors, metadata as JSON in the same file's header.

Loading never unpickles anything: the model is rebuilt from the metadata's registry name and
arguments, then the tensors are copied in. A human-readable ``.json`` twin is written beside it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from saddlepoint import __version__
from saddlepoint.fileio import atomic_path, write_text
from saddlepoint.models.registry import build_model

FORMAT = "saddlepoint-checkpoint"
FORMAT_VERSION = 1
_KEY = "saddlepoint"


def save_checkpoint(
    path: str | os.PathLike[str], model: nn.Module, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model``'s weights and ``metadata`` (JSON-serializable) atomically to ``path``.

    The model must come from :func:`saddlepoint.models.build_model` (it carries ``spec``).
    """
    spec = getattr(model, "spec", None)
    if spec is None:
        raise ValueError(
            "save_checkpoint needs a model built by saddlepoint.models.build_model (it records "
            "the architecture as model.spec); this one has no spec."
        )
    path = Path(path)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "model": spec,
        **(metadata or {}),
    }
    text = json.dumps(meta, sort_keys=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as temp:
        save_file(tensors, str(temp), metadata={_KEY: text})
    write_text(path.with_suffix(".json"), json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata stored in a checkpoint, without loading its weights."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {str(path)!r} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except Exception as error:  # safetensors raises its own error types
        raise ValueError(f"{path} is not a safetensors checkpoint: {error}") from error
    if _KEY not in header:
        raise ValueError(f"{path} is a safetensors file but not a saddlepoint checkpoint.")
    meta = json.loads(header[_KEY])
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} has unknown format {meta.get('format')!r}.")
    return meta


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from the metadata, load its weights; returns (model in eval mode, meta)."""
    meta = read_metadata(path)
    spec = meta["model"]
    model = build_model(
        spec["name"], in_shape=spec["in_shape"], num_classes=spec["num_classes"], **spec["kwargs"]
    )
    tensors = {}
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
            tensors[key] = handle.get_tensor(key)
    model.load_state_dict(tensors, strict=True)
    model.to(device).eval()
    return model, meta
