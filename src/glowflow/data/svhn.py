"""SVHN (cropped digits) from the MATLAB files ``root/train_32x32.mat`` and ``root/test_32x32.mat``.

The files are read here with ``scipy.io.loadmat`` rather than by ``torchvision.datasets.SVHN``,
which insists on their MD5 sums even offline; torchvision still downloads (and checks) them when
``download=True``, into ``root`` itself. Each file holds ``X``, uint8 ``(32, 32, 3, N)``, and
``y``, ``(N, 1)`` with the digit zero stored as label 10. ``scipy.io.loadmat`` builds only arrays
(it runs no code from the file); the file must hold uint8 ``X`` of that shape and ``N`` labels
in ``1..10``, or a ``ValueError`` names it and what is wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from glowflow.data.dataset import ImageSource
from glowflow.data.download import require, torchvision_download

from ..errors import ConfigError


def read_svhn(root: Path, part: str, download: bool) -> ImageSource:
    """SVHN's train (73,257) or test (26,032) part: 3x32x32, 256 levels, 10 classes (0..9)."""
    if download:
        torchvision_download("SVHN", root, split=part)
    from scipy.io import loadmat

    path = require(root / f"{part}_32x32.mat", "SVHN")
    try:
        stored = loadmat(path, variable_names=("X", "y"))
    except Exception as error:  # scipy fails on broken files in many ways; each is a bad file
        raise ConfigError(f"cannot read SVHN file {path} as a MATLAB v5 file: {error}") from error
    x, y = stored.get("X"), stored.get("y")
    if x is None or y is None:
        raise ConfigError(f"SVHN file {path} lacks the variables 'X' and 'y'")
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise ConfigError(
            f"SVHN file {path}: 'X' must be uint8 (32, 32, 3, N), found {x.dtype} {x.shape}"
        )
    if y.size != x.shape[3] or y.dtype.kind not in "iuf":
        raise ConfigError(f"SVHN file {path}: {x.shape[3]} images but 'y' is {y.dtype} {y.shape}")
    valid = np.isin(y, np.arange(1, 11))
    if not valid.all():
        raise ConfigError(
            f"SVHN file {path}: labels must be 1..10 (10 for zero), found {y[~valid].flat[0]}"
        )
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))
    labels = y.reshape(-1).astype(np.int64) % 10
    return ImageSource(
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels),
        n_bins=256,
        class_names=tuple(str(digit) for digit in range(10)),
    )
