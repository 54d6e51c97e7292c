"""The embedded default dataset: scikit-learn's handwritten digits, shipped as ``digits.npz``.

1,797 greyscale 8x8 images with 17 grey levels (0..16, so ``n_bins = 17``) and labels 0..9.
``digits.npz`` holds ``images`` (uint8, ``(1797, 8, 8)``) and ``labels`` (uint8, ``(1797,)``) in
``sklearn.datasets.load_digits()`` order. It was made once, with scikit-learn 1.9.1, by::

    import numpy as np; from sklearn.datasets import load_digits
    d = load_digits()
    np.savez_compressed("digits.npz", images=d.images.astype("uint8"), labels=d.target.astype("uint8"))

so reading it needs only numpy. The split is fixed so that results compare across tools: the
first :data:`DIGITS_TRAIN_SIZE` images (1,500) are the train part, the last 297 the test set.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch

from glowflow.data.dataset import ImageSource

DIGITS_N_BINS = 17
DIGITS_TRAIN_SIZE = 1500


def read_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The embedded ``(images, labels)`` arrays, uint8 ``(1797, 8, 8)`` and ``(1797,)``."""
    with resources.as_file(resources.files("glowflow.data") / "digits.npz") as path:
        with np.load(path) as arrays:
            return arrays["images"], arrays["labels"]


def read_digits(root: Path, part: str, download: bool) -> ImageSource:
    """The train (first 1,500) or test (last 297) part; ``root`` and ``download`` are unused."""
    images, labels = read_digits_arrays()
    rows = slice(None, DIGITS_TRAIN_SIZE) if part == "train" else slice(DIGITS_TRAIN_SIZE, None)
    return ImageSource(
        images=torch.from_numpy(images[rows, None].copy()),
        labels=torch.from_numpy(labels[rows].astype(np.int64)),
        n_bins=DIGITS_N_BINS,
        class_names=tuple(str(digit) for digit in range(10)),
    )
