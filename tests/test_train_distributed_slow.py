"""Data-parallel runs under faults (``pytest -m slow tests/test_train_distributed_slow.py``):
``glowflow train --nproc-per-node 2`` (torch's elastic agent, gloo on CPU) with one rank
SIGKILLed while training. The other rank is stopped by the agent within a bounded time, the
launcher prints one line naming the killed rank and its signal, and ``--resume auto`` reaches
the uninterrupted run's state (:func:`test_faults.assert_same_run`: every metrics row and
every tensor)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_faults import RUN, assert_same_run, one_error_line
from test_train_distributed import SRC

pytestmark = pytest.mark.slow

STOP_BOUND_S = 30.0
"""How long the surviving rank and the launcher may take to stop after the kill."""

DDP_RUN = [*RUN, "--max-steps", "30", "--checkpoint-every", "10", "--nproc-per-node", "2"]
""":data:`test_faults.RUN` long enough to be killed between its checkpoints, in 2 processes."""


LAUNCHERS = ("glowflow", "torchrun")
"""``glowflow train --nproc-per-node 2``, or torch's own ``torchrun --nproc_per_node=2``."""


def launch(run_dir: Path, *extra: str, launcher: str = "glowflow") -> subprocess.Popen:
    """``python -m glowflow train`` of :data:`DDP_RUN` into ``run_dir`` (under ``torchrun``
    for ``launcher="torchrun"``), stderr piped."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": "1",
    }
    train = ["-m", "glowflow", "train", "--run-dir", str(run_dir)]
    if launcher == "glowflow":
        command = [sys.executable, *train, *DDP_RUN]
    else:
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        own = DDP_RUN[: DDP_RUN.index("--nproc-per-node")]
        command = [*torchrun, "--nproc_per_node=2", *train, *own]
    return subprocess.Popen(
        [*command, *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from ``/proc``'s parent ids)."""
    parents = {}
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (OSError, ValueError):
            continue
        if entry.isdigit():
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def worker(launcher: subprocess.Popen, rank: int, timeout: float = 120.0) -> int:
    """The pid of ``launcher``'s worker process of rank ``rank`` (read from its environment)."""
    wanted = f"RANK={rank}".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in descendants(launcher.pid):
            try:
                environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if wanted in environment and any(v.startswith(b"LOCAL_RANK=") for v in environment):
                return pid
        time.sleep(0.1)
    raise AssertionError(f"no rank {rank} worker below process {launcher.pid}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run of :data:`DDP_RUN`."""
    folder = tmp_path_factory.mktemp("reference") / "run"
    uninterrupted = launch(folder)
    _, err = uninterrupted.communicate(timeout=600)
    assert uninterrupted.returncode == 0, err[-3000:]
    return folder


@pytest.mark.parametrize(
    "how, rank", [("glowflow", 1), ("glowflow", 0), ("torchrun", 1)], ids=lambda v: str(v)
)
def test_a_killed_rank_stops_the_other_in_bounded_time_and_the_run_resumes(
    tmp_path, reference, how, rank
):
    """Rank 1, or rank 0 (the one that writes), SIGKILLed after the first checkpoint: the
    other stops within :data:`STOP_BOUND_S` with no traceback (its own line says it lost a
    peer when it notices before the launcher stops it), glowflow's launcher's one error line
    names the killed process and its signal (under ``torchrun``, torchrun's own report does),
    and the resumed run ends in the uninterrupted one's state."""
    run = tmp_path / "run"
    launcher = launch(run, launcher=how)
    victim = worker(launcher, rank)
    first = run / "checkpoints" / "step-00000010"
    deadline = time.monotonic() + 300
    while not first.is_dir() and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.is_dir() and launcher.poll() is None, "the run ended before its kill"
    survivor = worker(launcher, 1 - rank)
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    _, err = launcher.communicate(timeout=STOP_BOUND_S + 60)
    stopped = time.monotonic() - killed
    assert stopped < STOP_BOUND_S, f"{stopped:.1f} s to stop after the kill"
    assert (
        not Path(f"/proc/{survivor}").exists()
        or "zombie" in Path(f"/proc/{survivor}/status").read_text()
    )
    if how == "glowflow":
        assert launcher.returncode == 1
        line = one_error_line(err)
        assert f"process {rank} of 2 was killed by SIGKILL" in line, line
    else:
        assert launcher.returncode != 0 and "Signal 9 (SIGKILL)" in err, err[-3000:]
    resumed = launch(run, "--resume", "auto", launcher=how)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert_same_run(run, reference)
