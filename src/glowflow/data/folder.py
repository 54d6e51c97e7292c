"""Any folder of images, laid out like ``torchvision.datasets.ImageFolder``.

When ``path`` holds both a ``train/`` and a ``test/`` subfolder, those are the two parts (give
them the same class subfolders); otherwise ``path`` is the training part alone and there is no
test split. Within a part, each subfolder that contains images is a class (sorted by name,
searched recursively); a part without such subfolders is read as one unlabelled set of its own
images (label 0, ``num_classes`` ``None``). Files with extensions in :data:`IMAGE_EXTENSIONS`
count. Channels follow the first training image: 1 for greyscale, else 3 (RGB). Without
``image_size`` all images, of both parts, must share its size; with it they are centre-cropped
to squares and resized. Every image of a part is decoded when the part is loaded, so files that
are no images, truncated or too large (a decompression bomb) are reported before training, each
in a ``ValueError`` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from glowflow.data.dataset import ImageSource
from glowflow.data.download import require
from glowflow.data.image_files import (
    IMAGE_EXTENSIONS,
    ImageFiles,
    check_image,
    read_mode,
    read_size,
)

from ..errors import ConfigError


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def list_part(path: Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """The image files of one part, their labels, and its class names (empty if unlabelled)."""
    subfolders = [(d, _images_in(d, recursive=True)) for d in sorted(path.iterdir()) if d.is_dir()]
    classes = [(d, files) for d, files in subfolders if files]
    if classes:
        paths = [p for _, files in classes for p in files]
        labels = [label for label, (_, files) in enumerate(classes) for _ in files]
    else:
        paths = _images_in(path, recursive=False)
        labels = [0] * len(paths)
    if not paths:
        raise ConfigError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {path}")
    return paths, labels, tuple(d.name for d, _ in classes)


def check_images(paths: list[Path], reference: Path, same_size: bool) -> None:
    """Decode every file; with ``same_size``, each must be as large as ``reference``.

    Raises ``ValueError`` naming the first file that does not decode (see
    :func:`~glowflow.data.image_files.open_image`) or, with both sizes, the first of another size.
    Files are decoded one at a time and dropped, so memory holds one image.
    """
    expected = read_size(reference)
    for path in paths:
        size = check_image(path)
        if same_size and size != expected:
            raise ConfigError(
                f"images differ in size: {reference} is {expected[0]}x{expected[1]} but {path} is "
                f"{size[0]}x{size[1]} (width x height); pass image_size to crop and resize them"
            )


def read_folder(path: Path, part: str, image_size: int | None) -> ImageSource:
    """The ``part`` (``"train"`` or ``"test"``) of the folder ``path``, with class labels.

    Every image of the part is decoded here, so a broken file is found before training. The
    test part must have the train part's classes, and its images take the channels (and, without
    ``image_size``, must have the size) of the train part's first image.
    """
    if not require(path, "image folder", "check the path after 'folder:'").is_dir():
        raise ConfigError(f"image folder {path} is a file, not a folder")
    has_parts = (path / "train").is_dir() and (path / "test").is_dir()
    if part == "test" and not has_parts:
        raise ConfigError(
            f"image folder {path} has no test split: it needs train/ and test/ subfolders"
        )
    train_paths, labels, train_classes = list_part(path / "train" if has_parts else path)
    paths, classes = train_paths, train_classes
    if part == "test":
        paths, labels, classes = list_part(path / "test")
        if classes != train_classes:
            raise ConfigError(
                f"image folder {path}: test/ has classes {list(classes)} but train/ has "
                f"{list(train_classes)}; the labels would not match"
            )
    check_images(paths, reference=train_paths[0], same_size=image_size is None)
    return ImageSource(
        images=ImageFiles(paths, mode=read_mode(train_paths[0]), same_size=image_size is None),
        labels=torch.tensor(labels, dtype=torch.int64),
        n_bins=256,
        class_names=classes or None,
    )
