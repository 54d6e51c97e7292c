"""``load_dataset``: one entry point for every dataset glowflow knows by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from glowflow.data.celeba import read_celeba
from glowflow.data.cifar import read_cifar10
from glowflow.data.dataset import ImageDataset, ImageSource
from glowflow.data.digits import read_digits
from glowflow.data.folder import read_folder
from glowflow.data.mnist import read_fashion_mnist, read_mnist
from glowflow.data.splits import carve, check_split, stored_part
from glowflow.data.svhn import read_svhn

from ..errors import ConfigError

FOLDER_PREFIX = "folder:"

_READERS: dict[str, Callable[[Path, str, bool], ImageSource]] = {
    "digits": read_digits,
    "mnist": read_mnist,
    "fashion-mnist": read_fashion_mnist,
    "cifar10": read_cifar10,
    "svhn": read_svhn,
    "celeba": read_celeba,
}

DATASET_NAMES = (*_READERS, FOLDER_PREFIX + "PATH")
"""Names accepted by :func:`load_dataset`; ``folder:PATH`` reads any image folder."""


def load_dataset(
    name: str,
    root: str | Path = "data",
    split: str = "train",
    *,
    image_size: int | None = None,
    n_bits: int | None = None,
    val_size: int = 0,
    hflip: bool = False,
    download: bool = False,
) -> ImageDataset:
    """Load a dataset split as integer grey levels with labels.

    Args:
        name: one of :data:`DATASET_NAMES`: ``digits`` (embedded, no files needed), ``mnist``,
            ``fashion-mnist``, ``cifar10``, ``svhn``, ``celeba``, or ``folder:PATH`` for any
            image folder (``PATH`` as given, not under ``root``).
        root: folder holding the downloadable datasets, in torchvision's layout.
        split: ``"train"``, ``"val"`` or ``"test"``. ``"val"`` is the last ``val_size`` images
            of the training part, which ``"train"`` then leaves out; CelebA instead has an
            official validation partition (and takes no ``val_size``). Image folders have a
            test split only when they hold ``train/`` and ``test/`` subfolders; their files are
            in class order, so a hold-out comes from the last classes. Digits: the first 1,500
            images are the training part, the last 297 the test set.
        image_size: centre-crop every image to a square and resize it to this side.
        n_bits: keep the top ``n_bits`` bits of 8-bit images (``n_bins = 2**n_bits``).
        val_size: number of training images held out as the validation split.
        hflip: flip images left-right at random (training split only).
        download: fetch a missing torchvision dataset first (MD5-checked by torchvision).

    Returns:
        An :class:`ImageDataset` of ``(levels, label)`` pairs with ``shape``, ``n_bins``,
        ``num_classes``, ``class_names`` and ``attribute_names``.

    Raises:
        ValueError: unknown name or split, or options that do not fit the dataset.
        FileNotFoundError: the data is not on disk (message names the path and the remedy).
    """
    check_split(split)
    if hflip and split != "train":
        raise ConfigError(f"hflip is a training augmentation; it cannot be used on split {split!r}")
    root = Path(root)
    if name.startswith(FOLDER_PREFIX):
        folder = Path(name[len(FOLDER_PREFIX) :])
        source = carve(read_folder(folder, stored_part(split), image_size), split, val_size)
    elif name == "celeba":
        if val_size:
            raise ConfigError(
                "celeba has an official validation split (split='val'); val_size must be 0"
            )
        source = read_celeba(root, split, download)
    elif name in _READERS:
        source = carve(_READERS[name](root, stored_part(split), download), split, val_size)
    else:
        raise ConfigError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    return ImageDataset(source, image_size=image_size, n_bits=n_bits, hflip=hflip)
