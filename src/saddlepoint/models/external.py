"""Models that come from outside saddlepoint: the user's own code, their weights, exported programs.

Three routes in, none of which lets a file choose the code that runs:

* a factory named ``package.module:callable`` or ``path/to/file.py:callable`` (called with the
  user's keyword arguments) plus weights from ``.safetensors`` or a state dict that
  ``torch.load(..., weights_only=True)`` reads. A checkpoint records the factory's name, and
  loading it calls that factory only when the user trusts its module by name
  (``trust_factory``); a standard-library callable is never a factory;
* a ``torch.export`` program (``.pt2``), checked against an allow-list and loaded from a
  canonical copy (:mod:`saddlepoint.models.exported`);
* either one wrapped in an :class:`InputAdapter`, so attacks keep working on [0, 1] pixels while
  the model sees its own input range and normalization.

Weights are matched strictly; a mismatch is one error listing missing, unexpected and reshaped
keys (the same diff a saddlepoint checkpoint uses).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import pickle
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from saddlepoint.fileio import content_digest
from saddlepoint.models.exported import exported_tensor, load_exported, read_exported

EXTERNAL = "external"
EXPORTED = "exported"
EXPORTED_KEY = "exported_program"  # the .pt2 bytes, stored as a uint8 tensor in a checkpoint
# Never a model factory, whatever a file or a typo names: the interpreter's own modules.
_NOT_FACTORIES = frozenset(sys.stdlib_module_names) | {"builtins", "__main__"}


class InputAdapter(nn.Module):
    """Maps [0, 1] pixels to the wrapped model's own inputs: ``low + x * (high - low)``, then
    ``(z - mean) / std`` per channel. Its constants are not part of the state dict (they live in
    the checkpoint's metadata), so the weights are exactly the wrapped model's, under ``model.``.
    """

    low: torch.Tensor
    scale: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        model: nn.Module,
        bounds: Sequence[float] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.bounds = None if bounds is None else [float(b) for b in bounds]
        self.normalization = None if mean is None or std is None else ([*mean], [*std])
        low, high = self.bounds or (0.0, 1.0)
        self.register_buffer("low", torch.tensor(low), persistent=False)
        self.register_buffer("scale", torch.tensor(high - low), persistent=False)
        mean_values = [float(v) for v in (mean or [0.0])]
        std_values = [float(v) for v in (std or [1.0])]
        self.register_buffer("mean", torch.tensor(mean_values).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std_values).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bounds is not None:
            x = self.low + x * self.scale
        if self.normalization is not None:
            x = (x - self.mean) / self.std
        return self.model(x)

    def extra_repr(self) -> str:
        parts = []
        if self.bounds is not None:
            parts.append(f"bounds={self.bounds}")
        if self.normalization is not None:
            parts.append(f"mean={self.normalization[0]}, std={self.normalization[1]}")
        return ", ".join(parts) or "identity"

    def input_spec(self) -> dict[str, Any]:
        """The adapter's settings as JSON, for a checkpoint's metadata."""
        spec: dict[str, Any] = {}
        if self.bounds is not None:
            spec["bounds"] = self.bounds
        if self.normalization is not None:
            spec["mean"], spec["std"] = self.normalization
        return spec


def check_input_options(
    bounds: Sequence[float] | None, mean: Sequence[float] | None, std: Sequence[float] | None
) -> None:
    """One-line errors for an impossible adapter: a reversed range, a zero std, lengths."""
    if bounds is not None and (len(bounds) != 2 or not float(bounds[0]) < float(bounds[1])):
        raise ValueError(
            f"The input bounds must be two numbers LOW,HIGH with LOW < HIGH (the range the "
            f"model's inputs live in). Got {list(bounds)}."
        )
    if (mean is None) != (std is None):
        raise ValueError("The input normalization needs both mean and std.")
    if mean is not None and std is not None:
        if len(mean) != len(std) or not mean:
            raise ValueError(
                f"The input normalization needs one std per mean (one per channel, or one for "
                f"all). Got {len(mean)} means and {len(std)} stds."
            )
        if any(float(s) <= 0 for s in std):
            raise ValueError(f"Every std of the input normalization must be positive. Got {std}.")


def adapt(
    model: nn.Module,
    bounds: Sequence[float] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> InputAdapter:
    """``model`` behind an :class:`InputAdapter` (checked)."""
    check_input_options(bounds, mean, std)
    return InputAdapter(model, bounds, mean, std)


# --- factories -----------------------------------------------------------------------------


def resolve_factory(reference: str) -> Callable[..., nn.Module]:
    """The callable named by ``package.module:name`` or ``path/file.py:name``.

    Importing runs the module's code: name only code you trust, as with any Python import.
    """
    module_part, sep, attribute = str(reference).rpartition(":")
    if not sep or not module_part or not attribute:
        raise ValueError(
            f"--model {reference!r}: name a factory as package.module:function or "
            "path/to/file.py:function (a .pt2 file needs no ':')."
        )
    if module_part.endswith(".py"):
        path = Path(module_part)
        if not path.is_file():
            raise FileNotFoundError(
                f"--model {reference!r}: the file {module_part!r} does not exist."
            )
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        name = f"saddlepoint_user_{path.stem}_{digest}"
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ValueError(f"--model {reference!r}: {module_part!r} cannot be imported.")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
    else:
        _refuse_standard_library(reference, module_part)
        try:
            module = importlib.import_module(module_part)
        except ModuleNotFoundError as error:
            raise ValueError(
                f"--model {reference!r}: no module {error.name!r} on the Python path (install "
                "the package, run from its folder, or name the file as path/file.py:function)."
            ) from None
    factory = getattr(module, attribute, None)
    if factory is None:
        names = sorted(
            n for n in vars(module) if not n.startswith("_") and callable(vars(module)[n])
        )
        raise ValueError(
            f"--model {reference!r}: {module_part!r} has no {attribute!r}. "
            f"Callables there: {', '.join(names) or 'none'}."
        )
    if not callable(factory):
        raise ValueError(f"--model {reference!r}: {attribute!r} is not callable.")
    _refuse_standard_library(reference, str(getattr(factory, "__module__", None) or ""))
    return factory


def _refuse_standard_library(reference: str, module: str) -> None:
    """A factory builds a model; a callable of Python's own library (os.system, subprocess.run,
    builtins.eval, or one re-exported under another name) never does."""
    if module.split(".")[0] in _NOT_FACTORIES:
        raise ValueError(
            f"--model {reference!r}: {module!r} is part of Python's standard library, not a "
            "model factory; name a function or class of your own code that returns an "
            "nn.Module."
        )


def _module_part(reference: str) -> tuple[str, str]:
    """(module, callable) of a reference; a file path made absolute."""
    module_part, _, attribute = str(reference).rpartition(":")
    if module_part.endswith(".py"):
        module_part = str(Path(module_part).resolve())
    return module_part, attribute


def trusts(reference: str, trusted: Iterable[str]) -> bool:
    """Whether ``trusted`` (modules, files or full references a user named) covers the factory
    ``reference`` a checkpoint records: the same module (or file), and the same callable where
    the trusted entry names one."""
    module, attribute = _module_part(reference)
    for entry in map(str, trusted):
        if re.fullmatch(r".+:[A-Za-z_][A-Za-z0-9_]*", entry):
            entry_module, entry_attribute = _module_part(entry)
        else:
            entry_module, entry_attribute = _module_part(f"{entry}:")
        if entry_module == module and entry_attribute in ("", attribute):
            return True
    return False


def require_trust(reference: str, trusted: Iterable[str], source: str) -> None:
    """Refuse to import the factory a file names unless the user trusts its module."""
    if not trusts(reference, trusted):
        module = _module_part(reference)[0]
        raise ValueError(
            f"{source} holds an imported model whose metadata names the factory "
            f"{reference!r}; loading it imports and runs that code, which the file, not you, "
            f"chose. If it is your code, trust it by name: --trust-factory {module} (in Python, "
            f"load_checkpoint(..., trust_factory=[{module!r}]))."
        )


def factory_source_digest(reference: str) -> str:
    """The SHA-256 of the factory module's source file, found without importing anything: a
    result computed from an imported model depends on the factory's code as well as its
    weights. A module no finder on ``sys.path`` locates digests as its name alone."""
    from importlib.machinery import PathFinder

    module, _ = _module_part(reference)
    origin: str | None = module if module.endswith(".py") else None
    if origin is None:
        locations = None
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):
            found = PathFinder.find_spec(".".join(parts[:depth]), locations)
            if found is None:
                return f"unlocated {module}"
            locations = found.submodule_search_locations
        origin = found.origin if found is not None else None
    if origin is None or not Path(origin).is_file():
        return f"unlocated {module}"
    return content_digest(origin)


def factory_reference(reference: str) -> str:
    """The reference as stored in a checkpoint: a file path made absolute, a module kept."""
    module_part, attribute = _module_part(reference)
    return f"{module_part}:{attribute}"


def build_from_factory(reference: str, kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """Call the factory with ``kwargs``; the result must be an ``nn.Module``."""
    factory = resolve_factory(reference)
    try:
        model = factory(**dict(kwargs or {}))
    except TypeError as error:
        raise TypeError(
            f"--model {reference!r} with --model-arg {dict(kwargs or {})}: {error}"
        ) from None
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"--model {reference!r} returned a {type(model).__name__}, not a torch.nn.Module."
        )
    return model


# --- weights -------------------------------------------------------------------------------

_WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "weights")


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors from ``.safetensors``, or from a PyTorch file that loads with weights_only=True.

    A file holding ``{'state_dict': {...}}`` (or model_state_dict / model / net / weights) next
    to other entries, as training scripts often save, yields the inner dictionary.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--weights {str(path)!r} does not exist.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as error:  # safetensors raises its own error types
            raise ValueError(
                f"--weights {path}: not a readable safetensors file ({error})."
            ) from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"--weights {path}: refused; torch.load(weights_only=True) allows only tensors and "
            f"plain containers, and {_why_refused(error)}. A pickled object can run code when "
            "loaded: save model.state_dict() instead, or .safetensors."
        ) from None
    except Exception:  # torch raises RuntimeError, KeyError, EOFError... on files it cannot read
        raise ValueError(
            f"--weights {path}: not a PyTorch file torch.load can read (truncated, corrupt or "
            "another format); give a state dict saved by torch.save, or .safetensors."
        ) from None
    return _tensors_of(loaded, path)


def _why_refused(error: BaseException) -> str:
    """What torch's weights_only refusal met (a class it will not rebuild), without colours."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", text)
    if found:
        return f"this file holds a {found.group(1)} object"
    return "this file holds more than that"


def _tensors_of(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(loaded, Mapping):
        if loaded and all(isinstance(v, torch.Tensor) for v in loaded.values()):
            return {str(k): v for k, v in loaded.items()}
        for key in _WRAPPERS:
            inner = loaded.get(key)
            if not isinstance(inner, Mapping) or not inner:
                continue
            if all(isinstance(v, torch.Tensor) for v in inner.values()):
                return {str(k): v for k, v in inner.items()}
        keys = ", ".join(repr(k) for k in list(loaded)[:8])
        raise ValueError(
            f"--weights {path}: a dictionary, but not of tensors (keys: {keys}); save "
            "model.state_dict(), or put it under 'state_dict'."
        )
    raise ValueError(
        f"--weights {path}: holds a {type(loaded).__name__}, not a state dict of tensors."
    )


def weights_mismatch(
    expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]
) -> str | None:
    """A readable diff of missing, unexpected and reshaped keys, integer tensors for float
    weights and non-finite values; None when the tensors can be loaded as they are."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    reshaped = sorted(
        f"{k} {tuple(given[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in given and tuple(given[k].shape) != tuple(v.shape)
    )
    retyped = sorted(  # integers loaded into float weights are cast without a word by torch
        f"{k} {given[k].dtype} vs {v.dtype}"
        for k, v in expected.items()
        if k in given and given[k].is_floating_point() != v.is_floating_point()
    )
    nonfinite = sorted(
        k for k, t in given.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())
    )
    if not (missing or unexpected or reshaped or retyped or nonfinite):
        return None
    parts = [
        f"{label} ({len(names)}): {', '.join(names[:5])}" + (" ..." if len(names) > 5 else "")
        for label, names in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape (file vs model)", reshaped),
            ("dtype (file vs model)", retyped),
            ("NaN or infinite values", nonfinite),
        )
        if names
    ]
    text = "; ".join(parts)
    if unexpected and all(k.startswith("module.") for k in unexpected):
        text += " (the file's keys start with 'module.': saved from DataParallel; strip it)"
    return text


def load_weights_strictly(
    model: nn.Module, tensors: Mapping[str, torch.Tensor], source: str
) -> None:
    """Copy ``tensors`` into ``model``; any key or shape mismatch is one ValueError."""
    problem = weights_mismatch(model.state_dict(), tensors)
    if problem:
        raise ValueError(f"{source}: the weights do not match the model; {problem}.")
    model.load_state_dict(dict(tensors), strict=True)


def probe_classes(model: nn.Module, in_shape: Sequence[int], source: str) -> int:
    """The number of outputs ``model`` gives for a batch of two [0, 1] images of ``in_shape``
    (two, not one, so a program exported for a fixed batch of one fails here, clearly)."""
    x = torch.full((2, *[int(s) for s in in_shape]), 0.5)
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"{source} fails on a batch of shape {tuple(x.shape)} ({first}). It must take "
            "(N, C, H, W) images of the data's shape, for any N (export with a dynamic batch "
            "dimension)."
        ) from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"{source} must return logits of shape (N, classes); on 2 images it returned {shape}."
        )
    if not bool(torch.isfinite(out).all()):
        raise ValueError(
            f"{source} returns NaN or infinite logits on plain [0, 1] images; no accuracy or "
            "robustness computed from them would mean anything."
        )
    return int(out.shape[1])


# --- assembling a user's model ---------------------------------------------------------------


def external_model(
    reference: str,
    *,
    in_shape: Sequence[int],
    weights: str | os.PathLike[str] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    bounds: Sequence[float] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> InputAdapter:
    """A user's model ready for every command: built by its factory with ``weights`` loaded
    strictly, or read from a ``.pt2`` program; behind its input adapter; probed on ``in_shape``
    for its class count; in eval mode; carrying the ``spec`` a checkpoint stores."""
    check_input_options(bounds, mean, std)
    exported: bytes | None = None
    if str(reference).endswith(".pt2"):
        if weights is not None or kwargs:
            raise ValueError(
                f"--model {reference!r} is an exported program: it carries its weights and "
                "takes no arguments, so --weights and --model-arg do not apply."
            )
        inner: nn.Module
        inner, exported = load_exported(read_exported(reference), f"--model {reference}")
        base: dict[str, Any] = {"name": EXPORTED, "kwargs": {}}
    else:
        inner = build_from_factory(reference, kwargs)
        if weights is not None:
            load_weights_strictly(inner, read_state_dict(weights), f"--weights {weights}")
        base = {
            "name": EXTERNAL,
            "factory": factory_reference(reference),
            "kwargs": dict(kwargs or {}),
        }
        _check_json(base["kwargs"])
    model = InputAdapter(inner, bounds, mean, std).eval()
    classes = probe_classes(model, in_shape, f"--model {reference}")
    _attach(
        model, {**base, "in_shape": [int(s) for s in in_shape], "num_classes": classes}, exported
    )
    return model


def rebuild(
    spec: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor],
    source: str,
    trust_factory: Iterable[str] = (),
) -> InputAdapter:
    """The model a checkpoint of an imported model describes (``spec`` from its metadata). A
    factory is imported only when ``trust_factory`` names its module (see :func:`trusts`)."""
    settings = spec.get("input") or {}
    bounds, mean, std = settings.get("bounds"), settings.get("mean"), settings.get("std")
    check_input_options(bounds, mean, std)
    exported: bytes | None = None
    if spec["name"] == EXPORTED:
        if set(tensors) != {EXPORTED_KEY}:
            raise ValueError(
                f"{source}: an exported-program checkpoint must hold only {EXPORTED_KEY!r}."
            )
        program, exported = load_exported(tensors[EXPORTED_KEY].numpy().tobytes(), source)
        model = InputAdapter(program, bounds, mean, std)
    else:
        factory = spec.get("factory")
        if not isinstance(factory, str):
            raise ValueError(f"{source}: its metadata names no factory for the imported model.")
        require_trust(factory, trust_factory, source)
        model = InputAdapter(
            build_from_factory(factory, spec.get("kwargs") or {}), bounds, mean, std
        )
        load_weights_strictly(model, tensors, source)
    _attach(model, dict(spec), exported)
    return model


def _attach(model: InputAdapter, spec: dict[str, Any], exported: bytes | None) -> None:
    spec["input"] = model.input_spec()
    model.spec = spec  # type: ignore[assignment]  # nn.Module.__setattr__ is typed for tensors
    model.exported_bytes = exported  # type: ignore[assignment]


def checkpoint_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """What a checkpoint stores for ``model``: its state dict, or an exported program's bytes."""
    exported = getattr(model, "exported_bytes", None)
    if isinstance(exported, bytes):
        return {EXPORTED_KEY: exported_tensor(exported)}
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def _check_json(kwargs: Mapping[str, Any]) -> None:
    try:
        json.dumps(dict(kwargs))
    except TypeError as error:
        raise ValueError(
            f"--model-arg values must be plain numbers, strings or lists ({error})."
        ) from None
