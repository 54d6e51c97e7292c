"""The steps since the last metrics row, summed on the training device."""

from __future__ import annotations

import time
from typing import Any, Optional

import torch

from . import distributed
from .step import StepOutput


class StepWindow:
    """Sums of bits/dim and gradient norm over the taken steps since the last metrics row,
    taken steps and images, the skip counters, and the wall time spent stepping (periodic work
    excluded), all on the training device so a step never syncs with the host. Saved with every
    checkpoint, so a resumed run writes the same rows as an uninterrupted one."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(4, dtype=torch.float64, device=device)
        self.bad_run = torch.zeros((), dtype=torch.long, device=device)  # skipped in a row
        self.worst_run = torch.zeros((), dtype=torch.long, device=device)
        self.skipped = torch.zeros((), dtype=torch.long, device=device)  # since the last read
        self.seconds = 0.0
        self.started = time.perf_counter()

    def add(self, out: StepOutput, images: int) -> None:
        """Count one step's results (device tensors; no host read)."""
        taken = out.ok.to(torch.float64)
        values = torch.stack(
            [
                torch.where(out.ok, out.bpd.double(), 0.0),
                torch.where(out.ok, out.grad_norm.double(), 0.0),
                taken,
                taken.new_tensor(float(images)),
            ]
        )
        self.sums += values
        self.bad_run = (self.bad_run + 1) * (~out.ok)
        self.worst_run = torch.maximum(self.worst_run, self.bad_run)
        self.skipped += (~out.ok).long()

    def pause(self) -> None:
        """Stop the clock (periodic work follows)."""
        self.seconds += time.perf_counter() - self.started

    def resume(self) -> None:
        self.started = time.perf_counter()

    def read_skips(self) -> tuple[int, int]:
        """``(steps skipped since the last read, longest run of skipped steps)``; resets both
        (a host sync)."""
        skipped, worst = torch.stack([self.skipped, self.worst_run]).tolist()
        self.skipped.zero_()
        self.worst_run.copy_(self.bad_run)
        return int(skipped), int(worst)

    def clear_skips(self) -> None:
        """Forget the current run of skipped steps (after a restore)."""
        self.bad_run.zero_()
        self.worst_run.zero_()

    def row(self, process: distributed.Process) -> dict[str, Optional[float]]:
        """The metrics row's training entries, summed over the processes; resets the sums."""
        bpd, grad, good, images = distributed.all_reduce_sum(self.sums, process).tolist()
        row = {
            "train_bpd": bpd / good if good else None,
            "grad_norm": grad / good if good else None,
            "images_per_s": images / self.seconds if self.seconds else None,
        }
        self.sums.zero_()
        self.seconds = 0.0
        return row

    def state_dict(self) -> dict[str, Any]:
        return {"sums": self.sums.cpu(), "bad_run": int(self.bad_run), "seconds": self.seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums.copy_(state["sums"])
        self.bad_run.fill_(int(state["bad_run"]))
        self.worst_run.copy_(self.bad_run)
        self.seconds = float(state["seconds"])
