"""A lazily decoded, sliceable sequence of image files (PIL is imported on first use).

Every file is opened through :func:`open_image`, so a file that is no image, is truncated or
corrupt, or is a decompression bomb gives a one-line ``ValueError`` naming it. 16-bit images
(PIL modes ``I;16*``, and ``I`` as older PIL versions read 16-bit PNGs) are scaled to 8 bits,
``v -> round(v / 257)``, instead of being clipped to white; other deep modes (``I`` from other
formats, ``F``) are refused.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from glowflow.data.geometry import center_square

from ..errors import ConfigError

if TYPE_CHECKING:
    from PIL.Image import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
GREY_MODES = ("1", "L", "LA", "La", *SIXTEEN_BIT_MODES)


@contextmanager
def open_image(path: Path) -> Iterator[Image]:
    """Open ``path`` with PIL; any failure, in opening or in the caller's decoding, names the file.

    PIL's decompression-bomb warning (more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels) is an
    error here, like its error at twice that. Decoders of untrusted files fail in many ways
    (``OSError``, ``SyntaxError``, ``struct.error``, ...), so every exception becomes a
    ``ValueError`` ``"cannot read image PATH: cause"``.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                yield image
    except Exception as error:
        raise ConfigError(f"cannot read image {path}: {error}") from error


def is_sixteen_bit(image: Image) -> bool:
    """Whether ``image`` holds 16-bit grey levels (``I`` only for PNG, whose ``I`` is 16-bit)."""
    return image.mode in SIXTEEN_BIT_MODES or (image.mode == "I" and image.format == "PNG")


def to_eight_bit(image: Image) -> Image:
    """``image`` with 8-bit levels: 16-bit grey scaled by ``round(v / 257)``, others unchanged."""
    from PIL import Image

    if is_sixteen_bit(image):
        values = np.asarray(image).astype(np.int64)
        return Image.fromarray(((values + 128) // 257).astype(np.uint8), mode="L")
    if image.mode in ("I", "F"):
        raise ConfigError(
            f"{image.mode!r} images (32-bit integer or float levels) are not supported"
        )
    return image


def read_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file, read from its header only."""
    with open_image(path) as image:
        return image.size


def read_mode(path: Path) -> str:
    """``"L"`` for a greyscale image file (8- or 16-bit, with or without alpha), else ``"RGB"``."""
    with open_image(path) as image:
        return "L" if image.mode in GREY_MODES or is_sixteen_bit(image) else "RGB"


def check_image(path: Path) -> tuple[int, int]:
    """Decode all of ``path`` (then drop it) and return its ``(width, height)``.

    Finds truncated and corrupt files, which the header alone does not show.
    """
    with open_image(path) as image:
        to_eight_bit(image).load()
        return image.size


class ImageFiles:
    """Image files decoded on access into ``(C, H, W)`` uint8 tensors.

    Args:
        paths: the files, in dataset order (at least one).
        mode: PIL mode every file is converted to, ``"L"`` (C = 1) or ``"RGB"`` (C = 3).
        crop_square: crop each image to its largest centred square after decoding.
        same_size: every file must have the first one's size; :meth:`decode` raises
            ``ValueError`` naming a file that does not. Off when the dataset resizes them.

    ``shape`` is ``(N, C, H, W)`` with ``H, W`` those of the first file (after cropping).
    """

    def __init__(
        self, paths: Sequence[Path], mode: str, crop_square: bool = False, same_size: bool = True
    ) -> None:
        if not paths:
            raise ConfigError("ImageFiles needs at least one file")
        self.paths = list(paths)
        self.mode = mode
        self.crop_square = crop_square
        self.same_size = same_size
        width, height = read_size(self.paths[0])
        if crop_square:
            width = height = min(width, height)
        self.shape = (len(self.paths), 1 if mode == "L" else 3, height, width)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int | slice) -> Tensor | ImageFiles:
        if isinstance(index, slice):
            return ImageFiles(self.paths[index], self.mode, self.crop_square, self.same_size)
        return self.decode(self.paths[index])

    def decode(self, path: Path) -> Tensor:
        """Decode one file into a ``(C, H, W)`` uint8 tensor."""
        with open_image(path) as image:
            array = np.array(to_eight_bit(image).convert(self.mode), dtype=np.uint8)
        levels = torch.from_numpy(array)
        levels = levels[None] if levels.ndim == 2 else levels.permute(2, 0, 1).contiguous()
        levels = center_square(levels) if self.crop_square else levels
        if self.same_size and levels.shape[1:] != self.shape[2:]:
            cropped = ", after cropping" if self.crop_square else ""
            raise ConfigError(
                f"image {path} is {levels.shape[2]}x{levels.shape[1]} but {self.paths[0]} is "
                f"{self.shape[3]}x{self.shape[2]} (width x height{cropped})"
            )
        return levels
