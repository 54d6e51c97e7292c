"""Durable, atomic file writes for the run folder."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from ..errors import ModelFileError


def os_error_text(error: OSError) -> str:
    """``"No space left on device (errno 28)"`` for an ``OSError``; its text if it has no errno."""
    if error.errno is None:
        return str(error)
    return f"{error.strerror or os.strerror(error.errno)} (errno {error.errno})"


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``path`` into one ``RuntimeError`` line that
    names the path, the cause and what to do (a full disk, a read-only folder, ...)."""
    try:
        yield
    except OSError as error:
        raise ModelFileError(
            f"cannot write {path}: {os_error_text(error)}; fix that and resume with --resume auto"
        ) from None


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
    beside it after a kill (:func:`~glowflow.training.checkpoint.remove_stale_temporaries` removes
    those). A failed write is a ``RuntimeError`` naming ``path`` (see :func:`writing`), with the
    old content kept."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with writing(path):
        try:
            with open(temporary, "w", newline="") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            if temporary.exists():
                temporary.unlink()
        fsync_path(path.parent)
