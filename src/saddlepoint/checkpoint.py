"""Checkpoints: weights in safetensors, metadata as JSON in the same file's header.

Loading never unpickles anything and never runs code the file names. A saddlepoint model is
rebuilt from the metadata's registry name and arguments (first on torch's "meta" device, so
declared shapes that do not match the weights present fail before any memory is allocated),
then the tensors are copied in. A model brought in by ``saddlepoint import`` is rebuilt from the
exported program the file carries (checked against an allow-list,
:mod:`saddlepoint.models.exported`), or from its factory reference (``package.module:function``)
only when the caller trusts that module by name (``trust_factory``; ``--trust-factory`` on the
command line): the file alone never makes saddlepoint import anything. A human-readable
``.json`` twin is written beside it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save
from torch import nn

from saddlepoint.fileio import write_bytes, write_text
from saddlepoint.models.external import (
    EXPORTED,
    EXTERNAL,
    checkpoint_tensors,
    rebuild,
    weights_mismatch,
)
from saddlepoint.models.registry import build_model
from saddlepoint.seeding import resolve_device
from saddlepoint.version import __version__

FORMAT = "saddlepoint-checkpoint"
FORMAT_VERSION = 1
_KEY = "saddlepoint"


def save_checkpoint(
    path: str | os.PathLike[str], model: nn.Module, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model``'s weights and ``metadata`` (JSON-serializable) atomically to ``path``.

    The model must come from :func:`saddlepoint.models.build_model` or
    :func:`saddlepoint.models.external.external_model` (it carries ``spec``).
    """
    spec = getattr(model, "spec", None)
    if spec is None:
        raise ValueError(
            "save_checkpoint needs a model built by saddlepoint.models.build_model or "
            "external_model (it records the architecture as model.spec); this one has no spec."
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
    tensors = checkpoint_tensors(model)
    write_bytes(path, save(tensors, metadata={_KEY: text}))
    write_text(path.with_suffix(".json"), json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata stored in a checkpoint, without loading its weights."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"Checkpoint {str(path)!r} is a folder; give the .safetensors file.")
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {str(path)!r} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except Exception as error:  # safetensors raises its own error types
        raise ValueError(f"{path} is not a safetensors checkpoint: {error}") from error
    if _KEY not in header:
        raise ValueError(f"{path} is a safetensors file but not a saddlepoint checkpoint.")
    try:
        meta = json.loads(header[_KEY])
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: its saddlepoint header is not valid JSON ({error}).") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: its saddlepoint header is not a JSON object.")
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{path}: its saddlepoint header has format {meta.get('format')!r}, not {FORMAT!r}; "
            "it was not written by saddlepoint (train or import it with saddlepoint first)."
        )
    return meta


def load_checkpoint(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    trust_factory: Iterable[str] = (),
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from the metadata, load its weights; returns (model in eval mode, meta).

    ``trust_factory`` names the modules (``package.module`` or ``path/file.py``) whose factories
    an imported checkpoint may call; any other factory it names is refused before importing."""
    target = resolve_device(device)  # a bad device string fails before any reading
    meta = read_metadata(path)
    spec = meta.get("model")
    needed = ("name", "in_shape", "num_classes", "kwargs")
    if not isinstance(spec, dict) or any(key not in spec for key in needed):
        raise ValueError(
            f"{path}: its metadata has no complete 'model' entry ({', '.join(needed)}), so the "
            "architecture cannot be rebuilt."
        )
    tensors = {}
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
            tensors[key] = handle.get_tensor(key)
    if spec["name"] in (EXTERNAL, EXPORTED):
        imported = rebuild(spec, tensors, str(path), trust_factory)
        imported.to(target).eval()
        return imported, meta
    if not isinstance(spec["kwargs"], dict):
        raise ValueError(f"{path}: its metadata's model kwargs are not a JSON object.")

    def build() -> nn.Module:
        return build_model(
            spec["name"],
            in_shape=spec["in_shape"],
            num_classes=spec["num_classes"],
            **spec["kwargs"],
        )

    with torch.device("meta"):  # shapes only: a declared 8000x8000 layer costs nothing here
        outline = build()
    problem = weights_mismatch(outline.state_dict(), tensors)
    if problem:
        raise ValueError(
            f"{path}: the weights do not match the architecture its metadata describes "
            f"({spec['name']}); {problem}."
        )
    model = build()
    model.load_state_dict(tensors, strict=True)
    model.to(target).eval()
    return model, meta
