"""Reading pickled numpy data from files that may be hostile, without running their code.

A pickle can call any importable function while it loads (``os.system`` among them), so a dataset
file is never given to ``pickle.load``. :func:`load_pickle` uses an unpickler whose
``find_class`` resolves only what pickled numpy arrays need: numpy's array rebuilders
(``numpy.core.multiarray._reconstruct``, ``numpy._core.multiarray._reconstruct`` in numpy 2, and
``numpy[._]core.numeric._frombuffer`` of protocol-5 pickles), ``numpy.ndarray`` and
``numpy.dtype``, plus ``_codecs.encode`` restricted to latin-1, which
protocol-2 pickles written by Python 3 use for ``bytes``. dicts, lists, strings and numbers need
no lookup. Any other global stops the load before it is called.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

_RECONSTRUCT = np.empty(0).__reduce__()[0]
_FROMBUFFER = np.empty(0).__reduce_ex__(5)[0]
"""numpy's array rebuilders, whichever module this numpy version keeps them in."""


def _latin1_encode(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as Python 3 pickles ``bytes`` at protocol 2, latin-1 only."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return codecs.encode(text, "latin-1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of pickled numpy arrays (see the module)."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"it refers to {module}.{name}, which is not allowed"
            ) from None


def load_pickle(path: Path) -> Any:
    """Unpickle ``path`` (latin-1 strings, as Python 2 wrote them) with :class:`NumpyOnlyUnpickler`.

    Raises ``ValueError`` naming the file when it is no pickle, is cut short, or refers to
    anything but numpy arrays; nothing the file names is ever called.
    """
    with open(path, "rb") as file:
        try:
            return NumpyOnlyUnpickler(file, encoding="latin1").load()
        except Exception as error:  # a malformed pickle fails in many ways; each is a bad file
            raise ConfigError(f"cannot read {path} as a pickle of numpy data: {error}") from error
