"""CelebA (aligned faces) with its 40 binary attributes, from the original on-disk layout.

Expected under ``root/celeba/`` (where ``torchvision.datasets.CelebA(download=True)`` puts it):

* ``img_align_celeba/000001.jpg`` ... : the aligned 178x218 JPEG faces;
* ``list_attr_celeba.txt``: the image count, a line of the 40 attribute names, then one line per
  image, ``000001.jpg -1  1  1 -1 ...``, with -1/1 values;
* ``list_eval_partition.txt``: ``000001.jpg 0`` lines, 0 = train, 1 = val, 2 = test.

The files are read here rather than by ``torchvision.datasets.CelebA``, which checks the MD5 sums
of the text files even offline. Each face is cropped to the 178x178 square around the centre of
the aligned image, as in the official Glow code; ``image_size`` then resizes it. Labels are the
40 attributes as a 0/1 int64 vector; their names are the dataset's ``attribute_names``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from glowflow.data.dataset import ImageSource
from glowflow.data.download import DOWNLOAD_HINT, require, torchvision_download
from glowflow.data.image_files import ImageFiles

BASE_FOLDER = "celeba"
PARTITIONS = {"train": 0, "val": 1, "test": 2}
CELEBA_HINT = (
    f"{DOWNLOAD_HINT} (img_align_celeba/, list_attr_celeba.txt and list_eval_partition.txt; "
    "the Google Drive download may hit its quota, then fetch them by hand)"
)


def read_attributes(path: Path) -> tuple[tuple[str, ...], dict[str, list[int]]]:
    """Attribute names and, per file name, its attributes as 0/1, from ``list_attr_celeba.txt``."""
    lines = path.read_text().splitlines()
    names = tuple(lines[1].split())
    rows = {}
    for line in lines[2:]:
        file_name, *values = line.split()
        if values:
            rows[file_name] = [int(value == "1") for value in values]
    return names, rows


def read_partition(path: Path) -> dict[str, int]:
    """Partition (0 train, 1 val, 2 test) per file name, from ``list_eval_partition.txt``."""
    pairs = (line.split() for line in path.read_text().splitlines())
    return {pair[0]: int(pair[1]) for pair in pairs if len(pair) == 2}


def read_celeba(root: Path, part: str, download: bool) -> ImageSource:
    """CelebA's official train (162,770), val (19,867) or test (19,962) part: 3x178x178, 256 levels."""
    if download:
        torchvision_download("CelebA", root, split="all", target_type="attr")
    folder = require(root / BASE_FOLDER, "CelebA", CELEBA_HINT)
    images = require(folder / "img_align_celeba", "CelebA", CELEBA_HINT)
    names, attributes = read_attributes(require(folder / "list_attr_celeba.txt", "CelebA", CELEBA_HINT))
    partition = read_partition(require(folder / "list_eval_partition.txt", "CelebA", CELEBA_HINT))
    files = [name for name in attributes if partition.get(name) == PARTITIONS[part]]
    if not files:
        raise ValueError(f"CelebA under {folder} has no images in its {part!r} partition")
    return ImageSource(
        images=ImageFiles([images / name for name in files], mode="RGB", crop_square=True),
        labels=torch.tensor([attributes[name] for name in files], dtype=torch.int64),
        n_bins=256,
        attribute_names=names,
    )
