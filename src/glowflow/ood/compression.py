"""Lossless code lengths of images, in bits per dimension: the input-complexity estimate of
Serrà et al. 2020 ("Input complexity and out-of-distribution detection with likelihood-based
generative models").

``L(x)`` is the length in bits of a general-purpose lossless compressor's output for the
integer grey levels of ``x``, divided by the image's ``D = C H W`` dimensions. The whole output
counts, headers included: for tiny images the headers dominate (a PNG of an 8x8 digit is mostly
its fixed chunks), but a constant per image shifts every score alike and leaves the ranking,
and so every detection metric, unchanged.
"""

from __future__ import annotations

import io
import zlib
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError


def _pixels(levels: Tensor) -> np.ndarray:
    """One image's uint8 ``(C, H, W)`` levels as a ``(H, W)`` or ``(H, W, 3)`` array."""
    if levels.ndim != 3 or levels.shape[0] not in (1, 3):
        raise ConfigError(
            f"expected a (C, H, W) image with 1 or 3 channels, got {tuple(levels.shape)}"
        )
    if levels.dtype != torch.uint8:
        raise ConfigError(f"expected uint8 grey levels, got {levels.dtype}")
    array = levels.cpu().numpy()
    return array[0] if array.shape[0] == 1 else np.ascontiguousarray(array.transpose(1, 2, 0))


def png_bits(levels: Tensor) -> int:
    """Bits of the PNG file (Pillow, ``compress_level=9``, adaptive filters) of one image's
    grey levels ``(C, H, W)``, stored as they are (level ``k`` as the byte ``k``)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_pixels(levels)).save(buffer, format="PNG", compress_level=9)
    return 8 * buffer.tell()


def zlib_bits(levels: Tensor) -> int:
    """Bits of ``zlib.compress`` (level 9) of one image's grey levels, row-major bytes."""
    return 8 * len(zlib.compress(_pixels(levels).tobytes(), 9))


COMPRESSORS: dict[str, Callable[[Tensor], int]] = {"png": png_bits, "zlib": zlib_bits}
"""The compressors by name: a function from one image's uint8 levels to its code length in bits."""


def code_length_bpd(levels: Tensor, compressor: str) -> Tensor:
    """``L(x) / D`` for every image of a uint8 batch ``(B, C, H, W)``, float64 ``(B,)``."""
    if compressor not in COMPRESSORS:
        raise ConfigError(
            f"unknown compressor {compressor!r}; choose from {', '.join(COMPRESSORS)}"
        )
    bits = COMPRESSORS[compressor]
    dims = levels[0].numel() if len(levels) else 1
    return torch.tensor([bits(image) / dims for image in levels], dtype=torch.float64)
