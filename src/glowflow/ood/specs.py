"""Image sets for out-of-distribution tests, named by a SPEC string.

A SPEC is one of:

* ``NAME:SPLIT`` -- a split of a dataset :func:`glowflow.data.load_dataset` knows
  (``digits:test``, ``cifar10:test``, ``svhn:test``, ``mnist:train``, ...);
* ``folder:PATH`` -- an image folder: its ``test/`` part when it has ``train/`` and ``test/``,
  else all its images;
* a transformation of the in-distribution set, which needs no download (:data:`TRANSFORMS`):
  ``noise:uniform`` (every level uniform at random), ``constant`` (each image one random level
  per channel, as in Nalisnick et al. 2019 and Serrà et al. 2020), ``inverted`` (``k ->
  n_bins - 1 - k``), ``hflip``, ``vflip``, ``shuffled-pixels`` (each image's pixel positions
  permuted at random, channels kept together) and ``blurred`` (a 3x3 binomial blur,
  ``[1, 2, 1]^T [1, 2, 1] / 16``, edges replicated, rounded to levels).

Every set comes out fitted to the model: images of another size are centre-cropped to a square
and resized to the model's (square) size, and levels of another depth are mapped
``k -> floor(k * n_bins / n_bins_data)`` (for 8-bit data and an ``n``-bit model, ``k >> (8 - n)``);
a different channel count is a ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import SPLITS, load_dataset
from ..data.registry import FOLDER_PREFIX
from ..errors import ConfigError

Transform = Callable[[Tensor, int, torch.Generator], Tensor]
"""``(levels (N, C, H, W) uint8, n_bins, generator) -> levels``: a transformation of a set."""


@dataclass(frozen=True)
class ImageSet:
    """A named set of images as integer grey levels.

    Attributes:
        name: the SPEC it came from.
        levels: uint8 ``(N, C, H, W)`` levels in ``[0, n_bins)``.
        n_bins: number of grey levels.
    """

    name: str
    levels: Tensor
    n_bins: int

    def __len__(self) -> int:
        return self.levels.shape[0]


def _uniform_noise(levels: Tensor, n_bins: int, generator: torch.Generator) -> Tensor:
    return torch.randint(0, n_bins, levels.shape, generator=generator).to(torch.uint8)


def _constant(levels: Tensor, n_bins: int, generator: torch.Generator) -> Tensor:
    count, channels = levels.shape[:2]
    values = torch.randint(0, n_bins, (count, channels, 1, 1), generator=generator)
    return values.expand(levels.shape).to(torch.uint8).contiguous()


def _inverted(levels: Tensor, n_bins: int, generator: torch.Generator) -> Tensor:
    return (n_bins - 1 - levels.long()).to(torch.uint8)


def _hflip(levels: Tensor, n_bins: int, generator: torch.Generator) -> Tensor:
    return levels.flip(-1)


def _vflip(levels: Tensor, n_bins: int, generator: torch.Generator) -> Tensor:
    return levels.flip(-2)


def _shuffled_pixels(levels: Tensor, n_bins: int, generator: torch.Generator) -> Tensor:
    count, channels, height, width = levels.shape
    order = torch.rand(count, height * width, generator=generator).argsort(dim=1)
    flat = levels.reshape(count, channels, height * width)
    return flat.gather(2, order[:, None, :].expand(-1, channels, -1)).reshape(levels.shape)


def _blurred(levels: Tensor, n_bins: int, generator: torch.Generator) -> Tensor:
    channels = levels.shape[1]
    taps = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
    kernel = (taps[:, None] * taps[None, :] / 16.0).expand(channels, 1, 3, 3)
    padded = F.pad(levels.double(), (1, 1, 1, 1), mode="replicate")
    return F.conv2d(padded, kernel, groups=channels).round().to(torch.uint8)


TRANSFORMS: dict[str, Transform] = {
    "noise:uniform": _uniform_noise,
    "constant": _constant,
    "inverted": _inverted,
    "hflip": _hflip,
    "vflip": _vflip,
    "shuffled-pixels": _shuffled_pixels,
    "blurred": _blurred,
}
"""The transformations of the in-distribution set, by SPEC (see the module docstring)."""


def transform_set(spec: str, in_set: ImageSet, seed: int = 0) -> ImageSet:
    """The transformation ``spec`` (a key of :data:`TRANSFORMS`) applied to ``in_set``, its
    random choices drawn from a generator seeded with ``seed``."""
    if spec not in TRANSFORMS:
        raise ConfigError(f"unknown transformation {spec!r}; choose from {', '.join(TRANSFORMS)}")
    generator = torch.Generator().manual_seed(seed)
    return ImageSet(spec, TRANSFORMS[spec](in_set.levels, in_set.n_bins, generator), in_set.n_bins)


def dataset_spec(spec: str) -> tuple[str, str]:
    """``(dataset name, split)`` of a ``NAME:SPLIT`` or ``folder:PATH`` SPEC."""
    if spec.startswith(FOLDER_PREFIX):
        if not spec[len(FOLDER_PREFIX) :]:
            raise ConfigError("folder: needs a path, as in folder:PATH")
        folder = Path(spec[len(FOLDER_PREFIX) :])
        has_parts = (folder / "train").is_dir() and (folder / "test").is_dir()
        return spec, "test" if has_parts else "train"
    name, colon, split = spec.rpartition(":")
    if not colon or not name or split not in SPLITS:
        raise ConfigError(
            f"{spec!r} is no image set: give NAME:SPLIT (split one of {', '.join(SPLITS)}), "
            f"folder:PATH, or a transformation of the in-distribution set "
            f"({', '.join(TRANSFORMS)})"
        )
    return name, split


def load_set(
    spec: str,
    shape: tuple[int, int, int],
    n_bins: int,
    data_root: str | Path = "data",
    limit: Optional[int] = None,
    val_size: int = 0,
) -> ImageSet:
    """The dataset split or folder ``spec`` as levels fitted to a model of image shape ``shape``
    ``(C, H, W)`` and ``n_bins`` grey levels (see the module docstring); at most its first
    ``limit`` images. ``val_size`` training images make up the ``val`` split (and are left out
    of ``train``), as in :func:`glowflow.data.load_dataset`."""
    name, split = dataset_spec(spec)
    channels, height, width = shape
    size = height if height == width else None
    dataset = load_dataset(name, data_root, split, image_size=size, val_size=val_size)
    if dataset.shape[0] != channels:
        raise ConfigError(
            f"{spec} has {dataset.shape[0]}-channel images; the model takes {channels}"
        )
    if tuple(dataset.shape[1:]) != (height, width):
        raise ConfigError(
            f"{spec} has {dataset.shape[1]}x{dataset.shape[2]} images; the model "
            f"takes {height}x{width} and only square models resize"
        )
    count = len(dataset) if limit is None else min(limit, len(dataset))
    if count < 1:
        raise ConfigError(f"{spec} gives no images")
    levels = torch.stack([dataset[i][0] for i in range(count)])
    if dataset.n_bins != n_bins:
        levels = (levels.long() * n_bins // dataset.n_bins).to(torch.uint8)
    return ImageSet(spec, levels, n_bins)


def image_set(
    spec: str,
    in_set: Optional[ImageSet],
    shape: tuple[int, int, int],
    n_bins: int,
    data_root: str | Path = "data",
    limit: Optional[int] = None,
    seed: int = 0,
    val_size: int = 0,
) -> ImageSet:
    """Any SPEC: a transformation of ``in_set`` (:func:`transform_set`), or a dataset split or
    folder (:func:`load_set`)."""
    if spec in TRANSFORMS:
        if in_set is None:
            raise ConfigError(f"{spec} transforms the in-distribution set, and there is none here")
        return transform_set(spec, in_set, seed)
    return load_set(spec, shape, n_bins, data_root, limit, val_size)
