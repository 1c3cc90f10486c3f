"""Read the pickled numpy files some datasets ship in, without running arbitrary code.

Both MNIST's classic ``mnist.pkl.gz`` and CIFAR-10's python batches are pickles. A pickle can
name any callable; this unpickler allows only what rebuilding numpy arrays needs.
"""

from __future__ import annotations

import io
import pickle
import zlib
from typing import IO, Any

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class RefusedPickle(pickle.UnpicklingError):
    """A pickle that asks for a callable outside the allowed list."""


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise RefusedPickle(
                f"Refusing to load {module}.{name} from a data file: only numpy arrays, lists, "
                "dicts, numbers and strings are allowed."
            )
        return super().find_class(module, name)


def load(handle: IO[bytes], encoding: str = "latin1", source: str = "the data file") -> Any:
    """Unpickle ``handle`` allowing only numpy arrays and plain Python containers. A refused,
    truncated or corrupt pickle is a ValueError naming ``source``."""
    try:
        return _ArrayOnlyUnpickler(handle, encoding=encoding).load()
    except RefusedPickle as error:
        raise ValueError(f"{source} was not loaded: {error}") from None
    except (pickle.UnpicklingError, EOFError, OSError, zlib.error) as error:  # OSError: gzip
        raise ValueError(
            f"{source} is truncated or corrupt ({type(error).__name__}: {error}); delete it and "
            "fetch it again."
        ) from None


def loads(data: bytes, encoding: str = "latin1", source: str = "the data") -> Any:
    """Like :func:`load`, from bytes."""
    return load(io.BytesIO(data), encoding=encoding, source=source)
