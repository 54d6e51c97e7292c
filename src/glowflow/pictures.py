"""Labelled pictures: every PNG of images that glowflow writes (samples, class grids,
interpolations, manipulations, reconstructions, the training sample grids) is made here.

A picture is torchvision's :func:`~torchvision.utils.make_grid` of ``N`` images ``(N, C, H, W)``
with intensities in ``[0, 1]``, ``nrow`` to a row, :data:`PADDING` white pixels around each,
so the bare grid is ``(H + p) R + p`` by ``(W + p) c + p`` pixels for ``R = ceil(N / c)`` rows
and ``c = min(nrow, N)`` columns. It is enlarged by one whole factor ``f`` with nearest
neighbour (each pixel becomes a sharp ``f x f`` square of its true value), the smallest ``f``
that makes the grid at least :data:`MIN_WIDTH` pixels wide and lets every column label fit
its column and every row label its row. Around it, in PIL's default font, white bands carry
the labels: a title on top, one label per column above the columns, one per row left of the
rows. Single-channel images give a greyscale PNG, three-channel ones an RGB PNG.

>>> import torch
>>> images = torch.rand(6, 1, 8, 8)
>>> picture(images, nrow=3).size  # 3 x 9 + 1 = 28 pixels wide, enlarged 19 times
(532, 361)
>>> labelled = picture(images, nrow=3, title="T = 0.7", rows=["a", "b"], columns=["1", "2", "3"])
>>> labelled.size[0] > 532 and labelled.size[1] > 361
True
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from .errors import ConfigError

MIN_WIDTH = 512
"""The grid of every picture is at least this many pixels wide (a whole-factor enlargement)."""

PADDING = 1
"""White pixels between and around the images of a grid, before enlarging."""

FONT_SIZE = 14
"""Size in pixels of the labels' font (PIL's default font)."""

MARGIN = 4
"""White pixels around each label."""


@functools.lru_cache(maxsize=1)
def label_font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """PIL's default font at :data:`FONT_SIZE` (its fixed-size bitmap font before Pillow 10.1)."""
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except TypeError:  # Pillow < 10.1: no sizes
        return ImageFont.load_default()


def text_width(text: str) -> int:
    """Width in pixels of ``text`` in the label font."""
    left, _, right, _ = label_font().getbbox(text)
    return int(right - left)


def line_extent() -> tuple[int, int]:
    """``(top, height)`` of a line of the label font: where ascenders start below the drawing
    position, and the height from ascenders to descenders, so labels share one baseline."""
    _, top, _, bottom = label_font().getbbox("Ag0")
    return int(top), int(bottom - top)


@dataclass(frozen=True)
class Layout:
    """Where the parts of a picture lie, in pixels of the written picture.

    Attributes:
        factor: the enlargement ``f`` of the grid.
        left: width of the row-label band (0 without row labels).
        top: height of the title and column-label bands above the grid.
        title_height: height of the title band (0 without a title).
        width, height: the whole picture.
    """

    factor: int
    left: int
    top: int
    title_height: int
    width: int
    height: int


def layout(
    shape: Sequence[int],
    rows: int,
    columns: int,
    title: str = "",
    row_labels: Sequence[str] = (),
    column_labels: Sequence[str] = (),
) -> Layout:
    """The :class:`Layout` of a picture of ``rows x columns`` images of ``shape`` ``(C, H, W)``."""
    _, height, width = shape
    cell_w, cell_h = width + PADDING, height + PADDING
    grid_w, grid_h = columns * cell_w + PADDING, rows * cell_h + PADDING
    _, line = line_extent()
    band = line + 2 * MARGIN
    factor = math.ceil(MIN_WIDTH / grid_w)
    if column_labels:
        widest = max(text_width(label) for label in column_labels)
        factor = max(factor, math.ceil((widest + 2 * MARGIN) / cell_w))
    if row_labels:
        factor = max(factor, math.ceil((line + MARGIN) / cell_h))
    left = max(text_width(label) for label in row_labels) + 2 * MARGIN if row_labels else 0
    title_height = band if title else 0
    top = title_height + (band if column_labels else 0)
    picture_w = max(left + grid_w * factor, text_width(title) + 2 * MARGIN if title else 0)
    return Layout(factor, left, top, title_height, picture_w, top + grid_h * factor)


def picture(
    images: Tensor,
    nrow: int,
    title: str = "",
    rows: Sequence[str] = (),
    columns: Sequence[str] = (),
) -> Image.Image:
    """``images`` ``(N, C, H, W)`` in ``[0, 1]`` (C = 1 or 3) as one labelled, enlarged grid.

    Args:
        images: the images, row by row.
        nrow: images per row.
        title: a line above the grid (none if empty).
        rows: one label per grid row, ``ceil(N / nrow)`` of them, or none.
        columns: one label per grid column, ``min(nrow, N)`` of them, or none.
    """
    from torchvision.utils import make_grid

    count, channels, height, width = images.shape
    if count < 1 or channels not in (1, 3) or nrow < 1:
        raise ConfigError(f"a picture needs N >= 1 images of 1 or 3 channels, got {images.shape}")
    n_columns = min(nrow, count)
    n_rows = math.ceil(count / n_columns)
    for name, labels, expected in (("row", rows, n_rows), ("column", columns, n_columns)):
        if labels and len(labels) != expected:
            raise ConfigError(f"{len(labels)} {name} labels for a grid of {expected} {name}s")
    images = images.detach().float().cpu()
    if count == 1:  # make_grid returns a single image as it is, without padding
        grid = torch.nn.functional.pad(images[0], (PADDING,) * 4, value=1.0)
    else:
        grid = make_grid(images, nrow=n_columns, padding=PADDING, pad_value=1.0)
        grid = grid[:1] if channels == 1 else grid  # make_grid repeats one channel thrice
    pixels = (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    bare = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    at = layout((channels, height, width), n_rows, n_columns, title, rows, columns)
    canvas = Image.new(bare.mode, (at.width, at.height), "white")
    f = at.factor
    canvas.paste(bare.resize((bare.width * f, bare.height * f), Image.NEAREST), (at.left, at.top))
    draw, font = ImageDraw.Draw(canvas), label_font()
    line_top, line = line_extent()

    def write(text: str, x: float, y: float) -> None:
        """Draw ``text`` with its ink's left edge at ``x`` and the line's top at ``y``."""
        left = font.getbbox(text)[0]
        draw.text((round(x - left), round(y - line_top)), text, fill="black", font=font)

    if title:
        write(title, MARGIN, MARGIN)
    for j, label in enumerate(columns):
        centre = at.left + (PADDING + j * (width + PADDING) + width / 2) * f
        write(label, centre - text_width(label) / 2, at.title_height + MARGIN)
    for i, label in enumerate(rows):
        centre = at.top + (PADDING + i * (height + PADDING) + height / 2) * f
        write(label, at.left - MARGIN - text_width(label), centre - line / 2)
    return canvas


def save_picture(
    images: Tensor,
    path: Path,
    nrow: int,
    title: str = "",
    rows: Sequence[str] = (),
    columns: Sequence[str] = (),
) -> Path:
    """Write :func:`picture` of ``images`` as the PNG ``path`` (its folder made); returns it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture(images, nrow, title, rows, columns).save(path)
    return path
