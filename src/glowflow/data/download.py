"""Finding datasets on disk, and fetching them through torchvision when asked to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import MissingFileError

DOWNLOAD_HINT = (
    "pass --download (download=True from Python) to fetch it with torchvision, or "
    "place the original files there"
)


def require(path: Path, dataset: str, hint: str = DOWNLOAD_HINT) -> Path:
    """Return ``path``, or raise ``FileNotFoundError`` naming it and how to get the data."""
    if not path.exists():
        raise MissingFileError(f"{dataset} not found: {path} does not exist; {hint}")
    return path


def torchvision_download(class_name: str, root: Path, **kwargs: Any) -> None:
    """Download a dataset into ``root`` with ``torchvision.datasets.<class_name>``.

    torchvision checks the MD5 sums of what it downloads; glowflow then reads the files itself.
    """
    from torchvision import datasets

    try:
        getattr(datasets, class_name)(str(root), download=True, **kwargs)
    except OSError as error:  # URLError and socket errors are OSErrors: no network, a bad URL
        reason = getattr(error, "reason", None) or error
        raise MissingFileError(
            f"cannot download {class_name} into {root}: {reason}; check the network, or "
            f"place the original files there and run without --download"
        ) from None
