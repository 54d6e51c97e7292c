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

The text files are checked (every row has one -1/1 value per attribute, every partition is 0, 1
or 2, both files list the same images) and so is that every image of the part exists; a
``ValueError`` names the file and line. Images are decoded on access, where a broken one is
reported by name.
"""

from __future__ import annotations

from pathlib import Path

import torch

from glowflow.data.dataset import ImageSource
from glowflow.data.download import DOWNLOAD_HINT, require, torchvision_download
from glowflow.data.image_files import ImageFiles

from ..errors import ConfigError

BASE_FOLDER = "celeba"
PARTITIONS = {"train": 0, "val": 1, "test": 2}
CELEBA_HINT = (
    f"{DOWNLOAD_HINT} (img_align_celeba/, list_attr_celeba.txt and list_eval_partition.txt; "
    "the Google Drive download may hit its quota, then fetch them by hand)"
)


def read_attributes(path: Path) -> tuple[tuple[str, ...], dict[str, list[int]]]:
    """Attribute names and, per file name, its attributes as 0/1, from ``list_attr_celeba.txt``.

    Raises ``ValueError`` naming the file (and line) when a row has not one -1/1 per attribute
    or the count on the first line is not the number of rows.
    """
    lines = path.read_text().splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise ConfigError(
            f"{path} does not start with an image count and a line of attribute names"
        )
    names = tuple(lines[1].split())
    rows = {}
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        file_name, *values = fields
        if len(values) != len(names) or not set(values) <= {"-1", "1"}:
            raise ConfigError(
                f"{path} line {number}: expected {len(names)} values of -1 or 1 after {file_name}"
            )
        rows[file_name] = [int(value == "1") for value in values]
    if len(rows) != int(lines[0]):
        raise ConfigError(f"{path} says it lists {int(lines[0])} images but lists {len(rows)}")
    return names, rows


def read_partition(path: Path) -> dict[str, int]:
    """Partition (0 train, 1 val, 2 test) per file name, from ``list_eval_partition.txt``.

    Raises ``ValueError`` naming the file and line of anything but ``NAME 0|1|2``.
    """
    partition = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise ConfigError(
                f"{path} line {number}: expected 'NAME 0|1|2', found {line.strip()!r}"
            )
        partition[fields[0]] = int(fields[1])
    return partition


def read_celeba(root: Path, part: str, download: bool) -> ImageSource:
    """CelebA's official train (162,770), val (19,867) or test (19,962) part: 3x178x178, 256 levels."""
    if download:
        torchvision_download("CelebA", root, split="all", target_type="attr")
    folder = require(root / BASE_FOLDER, "CelebA", CELEBA_HINT)
    images = require(folder / "img_align_celeba", "CelebA", CELEBA_HINT)
    names, attributes = read_attributes(
        require(folder / "list_attr_celeba.txt", "CelebA", CELEBA_HINT)
    )
    partition = read_partition(require(folder / "list_eval_partition.txt", "CelebA", CELEBA_HINT))
    if attributes.keys() != partition.keys():
        unmatched = sorted(attributes.keys() ^ partition.keys())
        raise ConfigError(
            f"CelebA under {folder}: list_attr_celeba.txt and list_eval_partition.txt list different "
            f"images ({len(attributes)} and {len(partition)}; {len(unmatched)} in one only, "
            f"first {unmatched[0]})"
        )
    files = [name for name in attributes if partition[name] == PARTITIONS[part]]
    if not files:
        raise ConfigError(f"CelebA under {folder} has no images in its {part!r} partition")
    missing = [name for name in files if not (images / name).is_file()]
    if missing:
        raise ConfigError(
            f"CelebA: {len(missing)} of the {len(files)} {part} images are missing from {images}, "
            f"first {missing[0]}; the download or extraction is incomplete"
        )
    return ImageSource(
        images=ImageFiles([images / name for name in files], mode="RGB", crop_square=True),
        labels=torch.tensor([attributes[name] for name in files], dtype=torch.int64),
        n_bins=256,
        attribute_names=names,
    )
