"""Any folder of images, laid out like ``torchvision.datasets.ImageFolder``.

When ``path`` holds both a ``train/`` and a ``test/`` subfolder, those are the two parts (give
them the same class subfolders); otherwise ``path`` is the training part alone and there is no
test split. Within a part, each subfolder that contains images is a class (sorted by name,
searched recursively); a part without such subfolders is read as one unlabelled set of its own
images (label 0, ``num_classes`` ``None``). Files with extensions in :data:`IMAGE_EXTENSIONS`
count. Channels follow the first image: 1 for greyscale, else 3 (RGB). Without ``image_size``
all images must share one size; with it they are centre-cropped to squares and resized.
"""

from __future__ import annotations

from pathlib import Path

import torch

from glowflow.data.dataset import ImageSource
from glowflow.data.download import require
from glowflow.data.image_files import IMAGE_EXTENSIONS, ImageFiles, read_mode, read_size


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def check_same_size(paths: list[Path]) -> None:
    """Raise ``ValueError`` naming two files of different sizes, if there are any."""
    first = read_size(paths[0])
    for path in paths[1:]:
        size = read_size(path)
        if size != first:
            raise ValueError(
                f"images differ in size: {paths[0]} is {first[0]}x{first[1]} but {path} is "
                f"{size[0]}x{size[1]} (width x height); pass image_size to crop and resize them"
            )


def read_folder(path: Path, part: str, image_size: int | None) -> ImageSource:
    """The ``part`` (``"train"`` or ``"test"``) of the folder ``path``, with class labels."""
    require(path, "image folder", "check the path after 'folder:'")
    if (path / "train").is_dir() and (path / "test").is_dir():
        path = path / part
    elif part == "test":
        raise ValueError(f"image folder {path} has no test split: it needs train/ and test/ subfolders")
    subfolders = [(d, _images_in(d, recursive=True)) for d in sorted(path.iterdir()) if d.is_dir()]
    classes = [(d, files) for d, files in subfolders if files]
    if classes:
        paths = [p for _, files in classes for p in files]
        labels = [label for label, (_, files) in enumerate(classes) for _ in files]
    else:
        paths = _images_in(path, recursive=False)
        labels = [0] * len(paths)
    if not paths:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {path}")
    if image_size is None:
        check_same_size(paths)
    return ImageSource(
        images=ImageFiles(paths, mode=read_mode(paths[0])),
        labels=torch.tensor(labels, dtype=torch.int64),
        n_bins=256,
        class_names=tuple(d.name for d, _ in classes) or None,
    )
