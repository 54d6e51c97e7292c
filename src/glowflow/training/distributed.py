"""One process or many under ``torchrun``: rank, device, and the few collectives training needs.

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; with ``WORLD_SIZE > 1`` the
process group is created (NCCL on CUDA, gloo on CPU) and each process uses
``cuda:LOCAL_RANK`` or the CPU. Without them everything here is a no-op.

When a process dies (a SIGKILL, a crash), the others find out in their next collective: gloo's
connection to it is reset at once, so they stop (:class:`PeerLost`, one line) rather than
wait, and the elastic agent (``torchrun``, ``glowflow train --nproc-per-node``) stops the rest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist

from ..errors import ConfigError


@dataclass(frozen=True)
class Process:
    """This process's place in the run."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(choice: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"`` as a device."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("device cuda requested but CUDA is not available")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def setup(device_choice: str) -> Process:
    """Read torchrun's environment, pick the device, start the process group if needed."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_choice, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Process(rank, local_rank, world_size, device)


def teardown(process: Process, finished: bool = False) -> None:
    """End the process group. After a ``finished`` run every rank waits for the others first
    (gloo aborts a process whose peer destroys the group under it); after a failure it does
    not wait, since a peer may never arrive."""
    if process.distributed and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, process: Process) -> torch.Tensor:
    """Sum ``tensor`` over processes, in place; returns it."""
    if process.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def rank0_value(value: float, process: Process) -> float:
    """Rank 0's ``value`` on every process (a broadcast; ``value`` itself when alone), so
    that decisions taken on it, a spent time budget say, are the same on every rank."""
    if not process.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=process.device)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def barrier(process: Process) -> None:
    if process.distributed:
        dist.barrier()


class PeerLost(RuntimeError):
    """Another process of a distributed run died (a collective found its connection gone):
    this one stops with one line instead of the backend's traceback; the launcher names the
    process that died."""


def lost_peer(error: BaseException, process: Process) -> Optional[PeerLost]:
    """``error`` as a :class:`PeerLost` when it is the process group's report of a lost peer
    (torch's ``DistError``, or gloo's error re-raised by autograd as a plain ``RuntimeError``);
    ``None`` otherwise."""
    if not process.distributed or not isinstance(error, RuntimeError):
        return None
    text = str(error)
    if not isinstance(error, dist.DistError) and "/gloo/" not in text:
        return None
    cause = text.split("] ", 1)[-1].split(". ", 1)[0]
    return PeerLost(
        f"process {process.rank} of {process.world_size} lost another process of the run "
        f"({cause}); stopping"
    )
