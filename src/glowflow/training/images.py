"""PNG grids of images and of samples drawn from fixed latents at several temperatures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..data import unit_to_image
from ..flow import Flow


def image_grid(images: Tensor, nrow: Optional[int] = None, padding: int = 1) -> Tensor:
    """Tile ``(B, C, H, W)`` images row by row into one ``(C, H', W')`` picture.

    ``nrow`` images per row (default ``ceil(sqrt(B))``), ``padding`` pixels of value 1 between.
    """
    count, channels, height, width = images.shape
    nrow = nrow or math.ceil(math.sqrt(count))
    rows = math.ceil(count / nrow)
    step_h, step_w = height + padding, width + padding
    grid = images.new_ones(channels, rows * step_h + padding, nrow * step_w + padding)
    for index in range(count):
        row, col = divmod(index, nrow)
        top, left = padding + row * step_h, padding + col * step_w
        grid[:, top : top + height, left : left + width] = images[index]
    return grid


MIN_PICTURE_SIZE = 256
"""Pictures narrower than this many pixels are enlarged by a whole factor (nearest neighbour,
so every pixel stays a sharp square of its true value): an 8x8 digit grid becomes viewable."""


def save_png(picture: Tensor, path: Path) -> Path:
    """Write a ``(C, H, W)`` picture with values in ``[0, 1]`` (C = 1 or 3) as a PNG, enlarged
    ``ceil(MIN_PICTURE_SIZE / max(H, W))`` times with nearest-neighbour when small."""
    array = (picture.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    array = array[0] if array.shape[0] == 1 else np.transpose(array, (1, 2, 0))
    image = Image.fromarray(array)
    factor = math.ceil(MIN_PICTURE_SIZE / max(image.size))
    if factor > 1:
        image = image.resize((image.width * factor, image.height * factor), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


@torch.no_grad()
def sample_images(
    flow: Flow,
    count: int,
    temperature: float,
    n_bins: int,
    seed: int,
    y: Optional[Tensor] = None,
) -> Tensor:
    """``count`` samples at ``temperature`` as intensities in ``[0, 1]``, ``(count, C, H, W)``.

    The base draws ``eps ~ N(0, I)`` come from a generator seeded with ``seed``, so calls with
    the same seed share their latents and differ only by the scale ``temperature * eps``.
    """
    device = next(flow.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    samples = flow.sample(count, temperature, y=y, generator=generator)
    return unit_to_image(samples, n_bins)


def save_sample_grids(
    flow: Flow,
    count: int,
    temperatures: Sequence[float],
    n_bins: int,
    seed: int,
    path_for: Callable[[float], Path],
    y: Optional[Tensor] = None,
    nrow: Optional[int] = None,
) -> list[Path]:
    """One PNG grid per temperature, all from the same latents; returns the paths written."""
    return [
        save_png(image_grid(sample_images(flow, count, t, n_bins, seed, y), nrow), path_for(t))
        for t in temperatures
    ]
