"""Run-folder lock: one writer at a time, stale locks of killed holders never block."""

import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile

import pytest

from glowflow.training.run_lock import RunLock, check_run_dir

HOLD = """
import sys, time
from glowflow.training.run_lock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def holder(run_dir):
    """A child process that takes the lock and sleeps; returned once it holds it."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "locked"
    return child


def test_second_process_is_refused_and_killed_holder_releases(tmp_path):
    run_dir = tmp_path / "run"
    child = holder(run_dir)
    try:
        message = (
            f"run folder {run_dir} is in use by another glowflow process "
            f"(pid {child.pid} on {socket.gethostname()}); wait for it or pick another "
            f"--run-dir"
        )
        with pytest.raises(RuntimeError) as refused:
            RunLock(run_dir).acquire()
        assert str(refused.value) == message
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    # The holder died without releasing: the OS dropped its lock, the stale file does not block.
    assert (run_dir / ".lock").is_file()
    with RunLock(run_dir) as lock:
        assert lock.held
        assert (run_dir / ".lock").read_text().split() == [str(os.getpid()), socket.gethostname()]
    assert not lock.held


def test_lock_is_exclusive_within_a_process_and_reusable_after_release(tmp_path):
    first = RunLock(tmp_path).acquire()
    with pytest.raises(
        RuntimeError, match=f"in use by another glowflow process \\(pid {os.getpid()} "
    ):
        RunLock(tmp_path).acquire()
    with pytest.raises(RuntimeError, match="already held"):
        first.acquire()
    first.release()
    first.release()  # no-op
    with RunLock(tmp_path):
        pass


def test_check_run_dir_creates_the_folder(tmp_path):
    assert check_run_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and not list((tmp_path / "a" / "b").iterdir())


def test_run_dir_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RuntimeError, match=r"run folder .*file is a file, not a folder"):
        check_run_dir(tmp_path / "file")
    with pytest.raises(RuntimeError, match=r"cannot create run folder .*file/run: Not a directory"):
        RunLock(tmp_path / "file" / "run").acquire()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_run_dir_is_a_clear_error(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(RuntimeError, match=r"cannot write in run folder .*Permission denied"):
            check_run_dir(tmp_path)
        with pytest.raises(RuntimeError, match=r"cannot create run folder .*Permission denied"):
            check_run_dir(tmp_path / "new")
    finally:
        tmp_path.chmod(0o700)


def test_unwritable_run_dir_is_a_clear_error_even_as_root(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    with pytest.raises(
        RuntimeError,
        match=r"cannot write in run folder .*: Read-only file system "
        r"\(errno 30\); make it writable",
    ):
        check_run_dir(tmp_path)
