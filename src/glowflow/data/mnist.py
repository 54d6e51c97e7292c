"""MNIST and Fashion-MNIST from their raw idx-ubyte files.

Expected, uncompressed, under ``root/MNIST/raw/`` (``root/FashionMNIST/raw/`` for Fashion-MNIST),
where ``torchvision.datasets.MNIST(download=True)`` puts them: ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``. They are
read here by :func:`glowflow.data.idx.read_idx` (torchvision only downloads them, MD5-checked),
and checked: each file's magic number and length against its header, as many labels as images,
and labels in ``0..9``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from glowflow.data.dataset import ImageSource
from glowflow.data.download import require, torchvision_download
from glowflow.data.idx import read_idx

from ..errors import ConfigError

PART_PREFIXES = {"train": "train", "test": "t10k"}
MNIST_CLASSES = (
    "0 - zero",
    "1 - one",
    "2 - two",
    "3 - three",
    "4 - four",
    "5 - five",
    "6 - six",
    "7 - seven",
    "8 - eight",
    "9 - nine",
)
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def _read(
    class_name: str, classes: tuple[str, ...], root: Path, part: str, download: bool
) -> ImageSource:
    if download:
        torchvision_download(class_name, root)
    raw = root / class_name / "raw"
    prefix = PART_PREFIXES[part]
    image_file = require(raw / f"{prefix}-images-idx3-ubyte", class_name)
    label_file = require(raw / f"{prefix}-labels-idx1-ubyte", class_name)
    images, labels = read_idx(image_file, ndim=3), read_idx(label_file, ndim=1)
    if len(images) != len(labels):
        raise ConfigError(
            f"{class_name}: {image_file} holds {len(images)} images but {label_file} holds "
            f"{len(labels)} labels"
        )
    if len(labels) and labels.max() >= len(classes):
        raise ConfigError(
            f"{class_name}: {label_file} has label {labels.max()}; labels must be in 0..9"
        )
    return ImageSource(
        images=torch.from_numpy(images[:, None].copy()),
        labels=torch.from_numpy(labels.astype("int64")),
        n_bins=256,
        class_names=classes,
    )


def read_mnist(root: Path, part: str, download: bool) -> ImageSource:
    """MNIST's train (60,000) or test (10,000) part: 1x28x28, 256 levels, 10 classes."""
    return _read("MNIST", MNIST_CLASSES, root, part, download)


def read_fashion_mnist(root: Path, part: str, download: bool) -> ImageSource:
    """Fashion-MNIST's train (60,000) or test (10,000) part: 1x28x28, 256 levels, 10 classes."""
    return _read("FashionMNIST", FASHION_MNIST_CLASSES, root, part, download)
