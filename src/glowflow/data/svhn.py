"""SVHN (cropped digits) from the MATLAB files ``root/train_32x32.mat`` and ``root/test_32x32.mat``.

The files are read here with ``scipy.io.loadmat`` rather than by ``torchvision.datasets.SVHN``,
which insists on their MD5 sums even offline; torchvision still downloads (and checks) them when
``download=True``, into ``root`` itself. Each file holds ``X``, uint8 ``(32, 32, 3, N)``, and
``y``, ``(N, 1)`` with the digit zero stored as label 10.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from glowflow.data.dataset import ImageSource
from glowflow.data.download import require, torchvision_download


def read_svhn(root: Path, part: str, download: bool) -> ImageSource:
    """SVHN's train (73,257) or test (26,032) part: 3x32x32, 256 levels, 10 classes (0..9)."""
    if download:
        torchvision_download("SVHN", root, split=part)
    from scipy.io import loadmat

    stored = loadmat(require(root / f"{part}_32x32.mat", "SVHN"))
    images = np.ascontiguousarray(stored["X"].transpose(3, 2, 0, 1), dtype=np.uint8)
    labels = stored["y"].reshape(-1).astype(np.int64) % 10
    return ImageSource(
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels),
        n_bins=256,
        class_names=tuple(str(digit) for digit in range(10)),
    )
