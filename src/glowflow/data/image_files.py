"""A lazily decoded, sliceable sequence of image files (PIL is imported on first use)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from glowflow.data.geometry import center_square

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")


def read_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file, read from its header only."""
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def read_mode(path: Path) -> str:
    """``"L"`` for a greyscale (or bilevel) image file, ``"RGB"`` for anything else."""
    from PIL import Image

    with Image.open(path) as image:
        return "L" if image.mode in ("1", "L") else "RGB"


class ImageFiles:
    """Image files decoded on access into ``(C, H, W)`` uint8 tensors.

    Args:
        paths: the files, in dataset order (at least one).
        mode: PIL mode every file is converted to, ``"L"`` (C = 1) or ``"RGB"`` (C = 3).
        crop_square: crop each image to its largest centred square after decoding.

    ``shape`` is ``(N, C, H, W)`` with ``H, W`` those of the first file (after cropping); the
    loaders make sure that all files agree or that the dataset resizes them.
    """

    def __init__(self, paths: Sequence[Path], mode: str, crop_square: bool = False) -> None:
        if not paths:
            raise ValueError("ImageFiles needs at least one file")
        self.paths = list(paths)
        self.mode = mode
        self.crop_square = crop_square
        width, height = read_size(self.paths[0])
        if crop_square:
            width = height = min(width, height)
        self.shape = (len(self.paths), 1 if mode == "L" else 3, height, width)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int | slice) -> Tensor | ImageFiles:
        if isinstance(index, slice):
            return ImageFiles(self.paths[index], self.mode, self.crop_square)
        return self.decode(self.paths[index])

    def decode(self, path: Path) -> Tensor:
        """Decode one file into a ``(C, H, W)`` uint8 tensor."""
        from PIL import Image

        with Image.open(path) as image:
            array = np.array(image.convert(self.mode), dtype=np.uint8)
        levels = torch.from_numpy(array)
        levels = levels[None] if levels.ndim == 2 else levels.permute(2, 0, 1).contiguous()
        return center_square(levels) if self.crop_square else levels
