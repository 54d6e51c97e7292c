"""One writer per run folder: :func:`check_run_dir` and :class:`RunLock`.

:class:`RunLock` holds an exclusive ``flock`` on ``RUN_DIR/.lock`` for as long as a training
process writes into the folder; a second glowflow process is refused with the holder's pid and
host. The lock belongs to the open file, not to the file on disk: the operating system drops it
when the holder exits in any way (``SIGKILL``, out-of-memory kill, crash), so a stale lock can
never block a run, and the ``.lock`` file itself is never deleted (deleting it would let two
processes lock two different files). Processes forked by the holder (e.g. data loader workers)
share its lock until they exit.

``flock`` is advisory and per host: it protects against a second glowflow process on the same
machine, and on network file systems only where they implement ``flock`` (NFSv4 does). Where
``fcntl`` does not exist (Windows), the folder is not locked and :meth:`RunLock.acquire` warns.
"""

from __future__ import annotations

import os
import socket
import tempfile
import warnings
from pathlib import Path
from types import TracebackType
from typing import Optional, Union

from ..errors import ModelFileError
from ..store.atomic import os_error_text

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"

PathLike = Union[str, Path]


def check_run_dir(run_dir: PathLike) -> Path:
    """Create the run folder if needed and make sure files can be written in it.

    Returns it as a ``Path``. Raises ``RuntimeError`` naming the folder and the cause when it
    is an existing file, cannot be created, or is not writable; nothing is left behind in it.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ModelFileError(
            f"run folder {run_dir} is a file, not a folder; pick another --run-dir"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ModelFileError(
            f"cannot create run folder {run_dir}: {os_error_text(error)}; pick another --run-dir"
        ) from None
    try:
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as error:
        raise ModelFileError(
            f"cannot write in run folder {run_dir}: {os_error_text(error)}; "
            f"make it writable or pick another --run-dir"
        ) from None
    return run_dir


class RunLock:
    """Exclusive lock on a run folder, as a context manager or with :meth:`acquire` and
    :meth:`release`.

    While held, no other :class:`RunLock` (in this or another process on this host) can
    acquire the same folder; :meth:`acquire` does not wait, it raises ``RuntimeError``.
    """

    def __init__(self, run_dir: PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._descriptor: Optional[int] = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._descriptor is not None

    def acquire(self) -> "RunLock":
        """Take the lock (creating the folder via :func:`check_run_dir`) and record this
        process's pid and host in ``.lock``; returns ``self``.

        Raises ``RuntimeError`` when another process holds it, naming its pid and host, or
        when the folder is unusable (see :func:`check_run_dir`).
        """
        if self.held:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        check_run_dir(self.run_dir)
        if fcntl is None:
            warnings.warn(
                f"run folder {self.run_dir} is not locked: locking needs fcntl, which "
                f"this platform lacks; do not start two runs in the same folder",
                stacklevel=2,
            )
            return self
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 1024).decode(errors="replace").split()
            os.close(descriptor)
            pid, host = holder if len(holder) == 2 else ("unknown", "unknown host")
            raise ModelFileError(
                f"run folder {self.run_dir} is in use by another glowflow process (pid {pid} "
                f"on {host}); wait for it or pick another --run-dir"
            ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._descriptor = descriptor
        return self

    def release(self) -> None:
        """Drop the lock (a no-op when not held). The ``.lock`` file stays."""
        if self._descriptor is not None:
            descriptor, self._descriptor = self._descriptor, None
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            os.close(descriptor)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(
        self,
        kind: Optional[type],
        error: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.release()
