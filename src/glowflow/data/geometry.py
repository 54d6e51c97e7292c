"""Square cropping and resizing of integer-level images, in torch only."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def center_square(image: Tensor) -> Tensor:
    """Crop the largest centred square from a ``(C, H, W)`` image.

    For CelebA's aligned ``178 x 218`` faces this is the ``178 x 178`` crop around the centre
    used by the official Glow code (rows 20..197).
    """
    height, width = image.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[..., top : top + side, left : left + side]


def resize_levels(image: Tensor, size: int) -> Tensor:
    """Centre-crop a ``(C, H, W)`` uint8 image to a square and resize it to ``size x size``.

    Resizing is antialiased bilinear interpolation, a convex combination of the input levels,
    rounded back to integers, so the result stays within the input's level range.
    """
    square = center_square(image)
    if square.shape[-1] == size:
        return square
    resized = F.interpolate(
        square[None].float(),
        size=(size, size),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )
    return resized[0].round().to(image.dtype)
