"""``glowflow train --nproc-per-node N``: one machine's data-parallel processes, launched by
glowflow itself.

This is ``torchrun --standalone --nproc_per_node=N -m glowflow ...`` run inside the
``glowflow`` process (torch's elastic agent, :func:`torch.distributed.launcher.api.elastic_launch`,
with a local c10d rendezvous and no restarts), so that a failure reads as glowflow's own: a
user mistake is the one line rank 0 prints (exit status 2), and any other failure is one line
naming the rank and its exit status, not the agent's report and traceback. Each process is
``python -m glowflow ARGS`` with ``LOCAL_RANK`` set, which is how a process knows it is a
worker and not the launcher.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from typing import Sequence

USER_MISTAKE = 2
"""The exit status of a user mistake (the CLI's one-line errors)."""


def is_worker() -> bool:
    """Whether this process was started by a launcher (``torchrun`` or :func:`launch_local`)."""
    return "LOCAL_RANK" in os.environ


class LaunchFailed(RuntimeError):
    """A worker of :func:`launch_local` failed with something other than a user mistake (its
    own output says what); the command line prints this one line and exits with status 1."""


def ended(exitcode: int) -> str:
    """How a worker ended, for :class:`LaunchFailed`'s line: a negative ``exitcode`` is the
    signal that killed it (the elastic agent then stopped the others)."""
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return (
            f"was killed by {name}; the other processes were stopped (resume the run "
            f"folder with --resume auto)"
        )
    return f"failed with exit status {exitcode} (its output is above)"


def launch_local(nproc: int, arguments: Sequence[str]) -> int:
    """Run ``python -m glowflow ARGUMENTS`` in ``nproc`` processes on this machine and wait
    for them; returns 0, or :data:`USER_MISTAKE` when a worker stopped on one (its line is
    printed by rank 0). ``LaunchFailed`` naming the first failed rank and its exit status
    otherwise. The elastic agent's own log lines are silenced below errors."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.1,
    )
    agent_log = logging.getLogger("torch.distributed.elastic")
    level = agent_log.level
    agent_log.setLevel(logging.CRITICAL)
    try:
        elastic_launch(config, sys.executable)("-m", "glowflow", *arguments)
    except ChildFailedError as error:
        # a process killed by a signal first: the others' failures follow from its death
        rank, failure = min(
            error.failures.items(), key=lambda item: (item[1].exitcode >= 0, item[1].timestamp)
        )
        if failure.exitcode == USER_MISTAKE:
            return USER_MISTAKE
        raise LaunchFailed(f"process {rank} of {nproc} {ended(failure.exitcode)}") from None
    finally:
        agent_log.setLevel(level)
    return 0
