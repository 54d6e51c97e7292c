"""Datasets as integer grey levels, and the maps between levels and the flows' unit interval.

``load_dataset(name, root, split)`` returns an :class:`ImageDataset` of ``(levels, label)``
pairs (uint8 ``(C, H, W)`` levels in ``[0, n_bins)``); :func:`dequantize` turns a batch of levels
into the continuous input ``x`` in ``[-0.5, 0.5)`` that the flows model. torchvision, scipy and
PIL are imported only by the loaders that need them; ``digits`` needs torch and numpy alone.
"""

from glowflow.data.dataset import ImageDataset, ImageSource
from glowflow.data.digits import DIGITS_N_BINS, DIGITS_TRAIN_SIZE
from glowflow.data.preprocess import (
    dequantize,
    dequantize_with,
    levels_to_unit,
    reduce_bits,
    unit_to_image,
    unit_to_levels,
)
from glowflow.data.registry import DATASET_NAMES, load_dataset
from glowflow.data.splits import SPLITS

__all__ = [
    "DATASET_NAMES",
    "DIGITS_N_BINS",
    "DIGITS_TRAIN_SIZE",
    "SPLITS",
    "ImageDataset",
    "ImageSource",
    "dequantize",
    "dequantize_with",
    "levels_to_unit",
    "load_dataset",
    "reduce_bits",
    "unit_to_image",
    "unit_to_levels",
]
