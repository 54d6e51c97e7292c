"""The labelled pictures of glowflow.pictures and the sample grids built on them:
exact nearest-neighbour enlargement of torchvision's grid, label bands with text in them, the
temperature-0 grid shown once."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from glowflow import Flow, Glow
from glowflow.pictures import (
    MARGIN,
    MIN_WIDTH,
    PADDING,
    layout,
    picture,
    save_picture,
    text_width,
)
from glowflow.training.images import class_layout, save_sample_grids


def images(count: int, channels: int = 1, side: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, channels, side, side, generator=torch.Generator().manual_seed(seed))


def bare_grid(x: torch.Tensor, nrow: int) -> np.ndarray:
    """The grid of ``x`` as uint8 pixels: image ``i`` at row ``i // c``, column ``i % c`` of
    ``c = min(nrow, N)``, each with its cell's 1-pixel white padding (one channel for grey)."""
    count, channels, height, width = x.shape
    columns, rows = min(nrow, count), math.ceil(count / min(nrow, count))
    grid = np.full(((height + 1) * rows + 1, (width + 1) * columns + 1, channels), 255, np.uint8)
    pixels = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i, image in enumerate(pixels):
        top, left = 1 + (i // columns) * (height + 1), 1 + (i % columns) * (width + 1)
        grid[top : top + height, left : left + width] = image
    return grid[..., 0] if channels == 1 else grid


@pytest.mark.parametrize("count, nrow, channels", [(10, 10, 1), (6, 3, 3), (1, 1, 1), (7, 4, 1)])
def test_an_unlabelled_picture_is_the_grid_enlarged_by_a_whole_factor(count, nrow, channels):
    x = images(count, channels)
    grid = bare_grid(x, nrow)
    written = np.asarray(picture(x, nrow))
    factor = written.shape[1] // grid.shape[1]
    assert factor == math.ceil(MIN_WIDTH / grid.shape[1]) and written.shape[1] >= MIN_WIDTH
    expected = grid.repeat(factor, axis=0).repeat(factor, axis=1)  # nearest neighbour
    assert np.array_equal(written, expected)


def test_labels_sit_in_bands_around_an_unchanged_grid():
    x = images(6)
    bare = np.asarray(picture(x, 3))
    rows, columns = ["class 1", "class 7"], ["0", "0.5", "1"]
    labelled = np.asarray(picture(x, 3, title="T = 0.7", rows=rows, columns=columns))
    at = layout((1, 8, 8), 2, 3, "T = 0.7", rows, columns)
    assert at.left > 0 and at.top > at.title_height > 0
    assert labelled.shape == (at.height, at.width)
    grid = labelled[at.top : at.top + bare.shape[0], at.left : at.left + bare.shape[1]]
    assert np.array_equal(grid, bare)  # the images themselves are untouched
    for band in (
        labelled[: at.title_height, :],  # title
        labelled[at.title_height : at.top, at.left :],  # column labels
        labelled[at.top :, : at.left],  # row labels
    ):
        assert (band < 128).any()  # text is drawn there
    other = np.asarray(picture(x, 3, title="T = 0.7", rows=["class 2", "class 7"], columns=columns))
    differs = (other != labelled).any(axis=1)
    top_row = at.top + (PADDING + 8) * at.factor
    assert differs[at.top : top_row].any() and not differs[top_row:].any()  # only row 1's label


def test_every_label_fits_its_column():
    columns = [f"strength {s / 10:+.1f}" for s in range(20)]
    at = layout((1, 8, 8), 1, 20, column_labels=columns)
    assert at.factor * (8 + PADDING) >= max(map(text_width, columns)) + 2 * MARGIN
    assert at.factor > math.ceil(MIN_WIDTH / (20 * 9 + 1))  # enlarged further for the labels


def test_label_counts_must_match_the_grid():
    with pytest.raises(ValueError, match="3 row labels for a grid of 2 rows"):
        picture(images(6), 3, rows=["a", "b", "c"])
    with pytest.raises(ValueError, match="1 column labels"):
        picture(images(6), 3, columns=["a"])


def test_save_picture_writes_grey_and_rgb_pngs(tmp_path):
    for channels, mode in ((1, "L"), (3, "RGB")):
        path = save_picture(images(4, channels), tmp_path / "deep" / f"{mode}.png", 2, "title")
        with Image.open(path) as written:
            assert written.mode == mode and written.width >= MIN_WIDTH


def test_class_layout_finds_one_class_rows_and_columns():
    assert class_layout(None, 4) == ("", [])
    assert class_layout(torch.full((6,), 3), 3) == ("all", [3])
    assert class_layout(torch.arange(3).repeat_interleave(4), 4) == ("rows", [0, 1, 2])
    assert class_layout(torch.arange(10) % 4, 4) == ("columns", [0, 1, 2, 3])
    assert class_layout(torch.tensor([0, 1, 1, 0, 0, 1]), 3) == ("", [])
    assert class_layout(torch.rand(4, 3), 2) == ("", [])  # class weights are not labelled


def tiny_flow(num_classes: int | None = None) -> Flow:
    return Flow(Glow((1, 8, 8), 2, 1, hidden_channels=8, seed=0, num_classes=num_classes)).eval()


def test_the_temperature_zero_grid_shows_its_one_image_once(tmp_path):
    flow = tiny_flow()
    paths = save_sample_grids(flow, 16, [0.0, 0.7], 256, 0, lambda t: tmp_path / f"t{t}.png")
    one, square = layout((1, 8, 8), 1, 1, "T"), layout((1, 8, 8), 4, 4, "T")
    with Image.open(paths[0]) as zero, Image.open(paths[1]) as warm:
        assert zero.size == (one.width, one.height)
        assert warm.size == (square.width, square.height)  # 16 samples, 4 to a row


def test_class_grid_at_temperature_zero_keeps_one_image_per_class(tmp_path):
    flow = tiny_flow(num_classes=3)
    y = torch.arange(3).repeat_interleave(5)
    paths = save_sample_grids(flow, 15, [0.0, 1.0], 256, 0, lambda t: tmp_path / f"{t}.png", y, 5)
    names = [f"class {k}" for k in range(3)]
    one_row, grid = (
        layout((1, 8, 8), 1, 3, "T", column_labels=names),
        layout((1, 8, 8), 3, 5, "T", names),
    )
    with Image.open(paths[0]) as zero, Image.open(paths[1]) as warm:
        assert zero.size == (one_row.width, one_row.height)  # a row: one image per class
        assert warm.size == (grid.width, grid.height)  # a labelled row per class
