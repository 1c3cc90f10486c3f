"""Read the pickled numpy files some datasets ship in, without running arbitrary code.

Both MNIST's classic ``mnist.pkl.gz`` and CIFAR-10's python batches are pickles. A pickle can
name any callable; this unpickler allows only what rebuilding numpy arrays needs.
"""

from __future__ import annotations

import io
import pickle
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


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(
                f"Refusing to load {module}.{name} from a data file: only numpy arrays, lists, "
                "dicts, numbers and strings are allowed."
            )
        return super().find_class(module, name)


def load(handle: IO[bytes], encoding: str = "latin1") -> Any:
    """Unpickle ``handle`` allowing only numpy arrays and plain Python containers."""
    return _ArrayOnlyUnpickler(handle, encoding=encoding).load()


def loads(data: bytes, encoding: str = "latin1") -> Any:
    """Like :func:`load`, from bytes."""
    return load(io.BytesIO(data), encoding=encoding)
