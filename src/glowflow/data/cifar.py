"""CIFAR-10 from its python-pickle batches under ``root/cifar-10-batches-py/``.

The files are read here rather than by ``torchvision.datasets.CIFAR10``, which insists on each
file's MD5 sum even offline; torchvision still downloads (and checks) them when
``download=True``. Each batch pickles a dict with ``data`` (uint8 ``(N, 3072)``, the red, green
and blue 32x32 planes of each image in turn) and ``labels``; ``batches.meta`` holds
``label_names``.

The pickles are read by :func:`glowflow.data.safe_pickle.load_pickle`, which runs no code from
the files, and each batch is checked: ``data`` uint8 ``(N, 3072)``, ``N`` labels in ``0..9``, and
ten label names; a file that fails names itself in a ``ValueError``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from glowflow.data.dataset import ImageSource
from glowflow.data.download import require, torchvision_download
from glowflow.data.safe_pickle import load_pickle

from ..errors import ConfigError

BASE_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
NUM_CLASSES = 10


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(data, labels)`` of one batch file: uint8 ``(N, 3072)`` and int64 ``(N,)`` in ``0..9``."""
    batch = load_pickle(path)
    if not isinstance(batch, dict) or not {"data", "labels"} <= batch.keys():
        raise ConfigError(f"CIFAR-10 batch {path} is not a dict with 'data' and 'labels'")
    data, labels = batch["data"], np.asarray(batch["labels"])
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3072
    ):
        found = (
            f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        )
        raise ConfigError(f"CIFAR-10 batch {path}: 'data' must be uint8 (N, 3072), found {found}")
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
        raise ConfigError(
            f"CIFAR-10 batch {path}: {len(data)} images but labels {labels.dtype} {labels.shape}"
        )
    if len(labels) and not 0 <= labels.min() <= labels.max() < NUM_CLASSES:
        raise ConfigError(
            f"CIFAR-10 batch {path}: labels must be in 0..9, found {labels.min()}..{labels.max()}"
        )
    return data, labels.astype(np.int64)


def read_label_names(path: Path) -> tuple[str, ...]:
    """The ten class names in ``batches.meta``."""
    meta = load_pickle(path)
    names = meta.get("label_names") if isinstance(meta, dict) else None
    if (
        not isinstance(names, list)
        or len(names) != NUM_CLASSES
        or not all(isinstance(n, str) for n in names)
    ):
        raise ConfigError(f"CIFAR-10 meta file {path} has no list of {NUM_CLASSES} 'label_names'")
    return tuple(names)


def read_cifar10(root: Path, part: str, download: bool) -> ImageSource:
    """CIFAR-10's train (50,000) or test (10,000) part: 3x32x32, 256 levels, 10 classes."""
    if download:
        torchvision_download("CIFAR10", root)
    folder = require(root / BASE_FOLDER, "CIFAR-10")
    batches = [
        read_batch(require(folder / name, "CIFAR-10"))
        for name in (TRAIN_BATCHES if part == "train" else TEST_BATCHES)
    ]
    class_names = read_label_names(require(folder / "batches.meta", "CIFAR-10"))
    data = np.concatenate([data for data, _ in batches]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([labels for _, labels in batches])
    return ImageSource(
        images=torch.from_numpy(np.ascontiguousarray(data)),
        labels=torch.from_numpy(labels),
        n_bins=256,
        class_names=class_names,
    )
