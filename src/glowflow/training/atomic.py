"""Durable, atomic file writes for the run folder."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's entry to disk (a folder: its list of names)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_text_atomically(path: Path, text: str) -> None:
    """Give ``path`` the content ``text``: after a kill at any point it holds either its old
    content (or does not exist) or ``text``, plus at worst a leftover ``.<name>.tmp-<pid>``
    beside it (:func:`~glowflow.training.checkpoint.remove_stale_temporaries` removes those)."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "w", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_path(path.parent)
