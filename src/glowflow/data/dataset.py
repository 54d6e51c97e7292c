"""The dataset type every loader returns: images as integer grey levels plus labels."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Union

import torch
from torch import Tensor
from torch.utils.data import Dataset

from glowflow.data.geometry import resize_levels
from glowflow.data.image_files import ImageFiles
from glowflow.data.preprocess import reduce_bits

from ..errors import ConfigError

Images = Union[Tensor, ImageFiles]
"""A uint8 ``(N, C, H, W)`` tensor held in memory, or files decoded on access."""

Label = Union[int, Tensor]
"""A class index, or for attribute datasets (CelebA) a 0/1 int64 vector."""


@dataclass(frozen=True)
class ImageSource:
    """What a loader reads: images at their stored size and levels, with their labels.

    Attributes:
        images: the images, indexable by position and sliceable.
        labels: ``(N,)`` int64 class indices, or ``(N, A)`` int64 0/1 attributes.
        n_bins: number of grey levels as stored (256 for 8-bit images, 17 for digits).
        class_names: names of the classes, or ``None`` for unlabelled or attribute data.
        attribute_names: names of the ``A`` attributes, or ``None``.
    """

    images: Images
    labels: Tensor
    n_bins: int
    class_names: tuple[str, ...] | None = None
    attribute_names: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: slice) -> ImageSource:
        return replace(self, images=self.images[index], labels=self.labels[index])


class ImageDataset(Dataset):
    """Images of integer grey levels with labels, as ``(levels, label)`` pairs.

    ``levels`` is a uint8 ``(C, H, W)`` tensor with values in ``[0, n_bins)``; ``label`` is an
    ``int`` class index (0 for unlabelled folders) or, for attribute data, a 0/1 int64 vector.
    Feed batches of levels to :func:`glowflow.data.dequantize` to get the flow's input.

    Each item is, in order: centre-cropped to a square and resized to ``image_size`` (when given),
    reduced to ``n_bits`` bits (when given: ``k >> (8 - n_bits)``, 8-bit data only), and flipped
    left-right with probability 1/2 (when ``hflip``, using torch's global random generator).

    Attributes:
        shape: ``(C, H, W)`` of every item.
        n_bins: number of grey levels of the items.
        num_classes: number of classes, or ``None``.
        class_names: names of the classes, or ``None``.
        attribute_names: names of the label attributes (CelebA's 40), or ``None``.
    """

    def __init__(
        self,
        source: ImageSource,
        *,
        image_size: int | None = None,
        n_bits: int | None = None,
        hflip: bool = False,
    ) -> None:
        if image_size is not None and image_size < 1:
            raise ConfigError(f"image_size must be positive, got {image_size}")
        if n_bits is not None and source.n_bins != 256:
            raise ConfigError(
                f"n_bits applies to 8-bit images; this data has {source.n_bins} levels"
            )
        if n_bits is not None and not 1 <= n_bits <= 8:
            raise ConfigError(f"n_bits must be between 1 and 8, got {n_bits}")
        self.source = source
        self.image_size = image_size
        self.n_bits = n_bits
        self.hflip = hflip
        channels, height, width = source.images.shape[1:]
        self.shape = (channels, image_size, image_size) if image_size else (channels, height, width)
        self.n_bins = 2**n_bits if n_bits else source.n_bins
        self.class_names = source.class_names
        self.num_classes = len(source.class_names) if source.class_names else None
        self.attribute_names = source.attribute_names

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[Tensor, Label]:
        levels = self.source.images[index]
        if self.image_size is not None:
            levels = resize_levels(levels, self.image_size)
        if self.n_bits is not None:
            levels = reduce_bits(levels, self.n_bits)
        if self.hflip and bool(torch.rand(()) < 0.5):
            levels = levels.flip(-1)
        label = self.source.labels[index]
        return levels, (label.clone() if label.ndim else int(label))
