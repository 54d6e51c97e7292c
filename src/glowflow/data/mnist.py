"""MNIST and Fashion-MNIST from their raw idx-ubyte files, read by torchvision.

torchvision expects the four uncompressed files under ``root/MNIST/raw/`` (``root/FashionMNIST/raw/``
for Fashion-MNIST): ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``. It reads them without checksums.
"""

from __future__ import annotations

from pathlib import Path

from glowflow.data.dataset import ImageSource
from glowflow.data.download import require, torchvision_download

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _read(class_name: str, root: Path, part: str, download: bool) -> ImageSource:
    if download:
        torchvision_download(class_name, root)
    for name in RAW_FILES:
        require(root / class_name / "raw" / name, class_name)
    from torchvision import datasets

    stored = getattr(datasets, class_name)(str(root), train=part == "train", download=False)
    return ImageSource(
        images=stored.data[:, None].contiguous(),
        labels=stored.targets.long(),
        n_bins=256,
        class_names=tuple(stored.classes),
    )


def read_mnist(root: Path, part: str, download: bool) -> ImageSource:
    """MNIST's train (60,000) or test (10,000) part: 1x28x28, 256 levels, 10 classes."""
    return _read("MNIST", root, part, download)


def read_fashion_mnist(root: Path, part: str, download: bool) -> ImageSource:
    """Fashion-MNIST's train (60,000) or test (10,000) part: 1x28x28, 256 levels, 10 classes."""
    return _read("FashionMNIST", root, part, download)
