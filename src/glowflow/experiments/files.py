"""Files of the experiment commands: dataset images and image files in, as the flow's
deterministic (dequantization-free) inputs; labelled PNG grids of flow outputs out. (A model's own
dataset comes from :meth:`glowflow.pretrained.LoadedModel.dataset`.)"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ..data import ImageDataset, levels_to_unit, unit_to_image
from ..data.geometry import resize_levels
from ..errors import ConfigError, MissingFileError, ModelFileError
from ..pictures import save_picture


def dataset_labels(dataset: ImageDataset) -> Tensor:
    """All labels of ``dataset`` without decoding images: ``(N,)`` classes or ``(N, A)``."""
    return dataset.source.labels


def take(dataset: ImageDataset, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Images ``indices`` of ``dataset`` as flow inputs ``(N, C, H, W)`` (bin centres in
    ``[-0.5, 0.5)``) and their labels; :class:`~glowflow.errors.ConfigError` for an index out
    of range."""
    for index in indices:
        if not 0 <= index < len(dataset):
            raise ConfigError(
                f"image index {index} is out of range: the split has {len(dataset)} images"
            )
    items = [dataset[i] for i in indices]
    levels = torch.stack([levels for levels, _ in items])
    labels = torch.stack([torch.as_tensor(label) for _, label in items])
    return levels_to_unit(levels, dataset.n_bins), labels


def read_image(path: Path, shape: Sequence[int], n_bins: int) -> Tensor:
    """An image file as a flow input ``(C, H, W)``: converted to grey (C = 1) or RGB (C = 3),
    centre-cropped to a square and resized to ``H``, its 8-bit values mapped onto ``n_bins``
    levels (``k = floor(v * n_bins / 256)``), then taken at the bin centres."""
    from PIL import Image, UnidentifiedImageError

    channels, height, width = shape
    if height != width:
        raise ConfigError(
            f"{path}: image files fit square models only; this model is {height}x{width}"
        )
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no image file at {path}")
    try:
        with Image.open(path) as image:
            pixels = np.array(image.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as error:
        raise ModelFileError(f"{path} is not an image PIL can read: {error}") from None
    levels = torch.from_numpy(pixels).reshape(pixels.shape[0], pixels.shape[1], channels)
    levels = levels.permute(2, 0, 1)
    levels = (resize_levels(levels, height).long() * n_bins) // 256
    return levels_to_unit(levels, n_bins)


def is_index(spec: str) -> bool:
    """Whether a command-line image ``spec`` is a dataset index (an integer), not a file."""
    return spec.lstrip("-").isdigit()


def image_or_index(
    spec: str, dataset: Optional[ImageDataset], shape: Sequence[int], n_bins: int
) -> tuple[Tensor, Optional[Tensor]]:
    """``spec`` as an image ``(C, H, W)`` and its label: an integer is an index into
    ``dataset`` (the label comes with it), anything else an image file (no label)."""
    if is_index(spec):
        if dataset is None:
            raise ConfigError(f"image index {spec} needs a dataset")
        images, labels = take(dataset, [int(spec)])
        return images[0], labels[0]
    return read_image(Path(spec), shape, n_bins), None


def save_grid(
    images: Tensor,
    n_bins: int,
    path: Path,
    nrow: int,
    title: str = "",
    rows: Sequence[str] = (),
    columns: Sequence[str] = (),
) -> Path:
    """Write flow outputs ``(N, C, H, W)`` (in ``[-0.5, 0.5)``, read at ``n_bins`` levels) as
    one labelled picture, ``nrow`` per row (see :func:`~glowflow.pictures.picture`)."""
    return save_picture(
        unit_to_image(images.detach().cpu(), n_bins), path, nrow, title, rows, columns
    )
