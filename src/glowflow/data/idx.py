"""Reading uint8 idx-ubyte files (MNIST's format), checking their header against their data.

An idx file starts with a magic number ``0x0000TTDD`` (``TT = 0x08`` for uint8 data, ``DD`` the
number of dimensions), then one big-endian uint32 per dimension, then the data, row-major. MNIST
images are ``DD = 3`` (magic 2051), labels ``DD = 1`` (magic 2049).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError

UINT8_TYPE = 0x08


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """The uint8 array in the idx file ``path``, which must have ``ndim`` dimensions.

    Raises ``ValueError`` naming the file when the magic number is not ``0x0800 | ndim`` (both
    numbers given) or the data is shorter or longer than its header says.
    """
    raw = path.read_bytes()
    expected = UINT8_TYPE << 8 | ndim
    header_size = 4 * (1 + ndim)
    magic = int.from_bytes(raw[:4], "big")
    if len(raw) < 4 or magic != expected:
        found = f"{magic} (0x{magic:08x})" if len(raw) >= 4 else f"only {len(raw)} bytes"
        raise ConfigError(
            f"{path} is not a uint8 idx file with {ndim} dimensions: magic number {found}, "
            f"expected {expected} (0x{expected:08x})"
        )
    if len(raw) < header_size:
        raise ConfigError(f"{path} ends inside its header ({len(raw)} of {header_size} bytes)")
    shape = tuple(int.from_bytes(raw[4 * i : 4 * i + 4], "big") for i in range(1, ndim + 1))
    size = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header_size != size:
        raise ConfigError(
            f"{path} holds {len(raw) - header_size} data bytes but its header says {size} "
            f"(shape {shape}): the file is truncated or has trailing data"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)
