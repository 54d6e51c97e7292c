"""Named splits and the validation hold-out carved from the end of a training part."""

from __future__ import annotations

from glowflow.data.dataset import ImageSource

from ..errors import ConfigError

SPLITS = ("train", "val", "test")
"""Split names accepted by :func:`glowflow.data.load_dataset`."""


def check_split(split: str) -> None:
    """Raise ``ValueError`` unless ``split`` is one of :data:`SPLITS`."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")


def stored_part(split: str) -> str:
    """The stored part a split comes from: ``"test"`` for the test split, else ``"train"``."""
    return "test" if split == "test" else "train"


def carve(train_or_test: ImageSource, split: str, val_size: int) -> ImageSource:
    """Select ``split`` from its stored part, holding out the last ``val_size`` training images.

    ``"test"`` returns the test part unchanged; ``"train"`` returns all but the last ``val_size``
    images of the train part and ``"val"`` exactly those, so the two never overlap.
    """
    if val_size < 0:
        raise ConfigError(f"val_size must be >= 0, got {val_size}")
    if split == "test":
        return train_or_test
    n = len(train_or_test)
    if split == "val" and not 0 < val_size < n:
        raise ConfigError(
            f"split='val' needs 0 < val_size < {n} (the training part's size), got {val_size}"
        )
    if val_size >= n:
        raise ConfigError(f"val_size={val_size} leaves no training images out of {n}")
    return train_or_test[n - val_size :] if split == "val" else train_or_test[: n - val_size]
