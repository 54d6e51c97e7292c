"""CIFAR-10 from its python-pickle batches under ``root/cifar-10-batches-py/``.

The files are read here rather than by ``torchvision.datasets.CIFAR10``, which insists on each
file's MD5 sum even offline; torchvision still downloads (and checks) them when
``download=True``. Each batch pickles a dict with ``data`` (uint8 ``(N, 3072)``, the red, green
and blue 32x32 planes of each image in turn) and ``labels``; ``batches.meta`` holds
``label_names``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from glowflow.data.dataset import ImageSource
from glowflow.data.download import require, torchvision_download

BASE_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)


def _unpickle(path: Path) -> dict[str, Any]:
    with open(path, "rb") as file:
        return pickle.load(file, encoding="latin1")


def read_cifar10(root: Path, part: str, download: bool) -> ImageSource:
    """CIFAR-10's train (50,000) or test (10,000) part: 3x32x32, 256 levels, 10 classes."""
    if download:
        torchvision_download("CIFAR10", root)
    folder = require(root / BASE_FOLDER, "CIFAR-10")
    batches = [
        _unpickle(require(folder / name, "CIFAR-10"))
        for name in (TRAIN_BATCHES if part == "train" else TEST_BATCHES)
    ]
    meta = _unpickle(require(folder / "batches.meta", "CIFAR-10"))
    data = np.concatenate([batch["data"] for batch in batches]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([np.asarray(batch["labels"], dtype=np.int64) for batch in batches])
    return ImageSource(
        images=torch.from_numpy(np.ascontiguousarray(data, dtype=np.uint8)),
        labels=torch.from_numpy(labels),
        n_bins=256,
        class_names=tuple(meta["label_names"]),
    )
