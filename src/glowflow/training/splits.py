"""A run's train, validation and test splits, loaded and checked before training starts."""

from __future__ import annotations

from typing import Any, Callable, Optional

from ..data import load_dataset
from . import distributed
from .config import TrainConfig


def load_splits(
    config: TrainConfig, process: distributed.Process, say: Callable[[str], None]
) -> tuple[Any, Optional[Any], Optional[Any]]:
    """Train, validation and test sets (``None`` where the dataset has none). Rank 0 loads
    (and downloads) first, the others after it. Every split is read and checked now, so a
    broken test image stops the run before training, not after it. The validation split is
    the last ``val_size`` training images, or CelebA's official validation partition."""
    main = process.is_main
    if not main:
        distributed.barrier(process)
    options = dict(
        image_size=config.image_size,
        n_bits=config.n_bits,
        val_size=config.val_size,
        download=config.download and main,
    )
    train_set = load_dataset(
        config.dataset, config.data_root, "train", hflip=config.hflip, **options
    )
    val_set = None
    if config.val_size or config.dataset == "celeba":
        val_set = load_dataset(config.dataset, config.data_root, "val", **options)
    try:
        test_set = load_dataset(config.dataset, config.data_root, "test", **options)
    except ValueError as error:
        if "no test split" not in str(error):
            raise
        say(f"{error}: the run reports no test bits/dim")
        test_set = None
    if main:
        distributed.barrier(process)
    return train_set, val_set, test_set
