"""What a checkpoint's ``state.pt`` holds beside the weights, and how it comes back."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from ..errors import ModelFileError
from .schedule import LRSchedule
from .window import StepWindow


@dataclass
class BestRecord:
    """The best validation result so far: its step, bits/dim, the validations since, and the
    validations run in all (every one of which could have chosen it)."""

    step: int = -1
    val_bpd: float = math.inf
    evals_since: int = 0
    validations: int = 0


class TrainingState:
    """The optimizer, the learning-rate schedule, the fp16 loss scale, the metrics window and
    the counters of a run (step, skipped steps, wall time of earlier sessions, best
    validation), with the RNG: everything a resumed run needs to repeat an uninterrupted one.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedule: LRSchedule,
        scaler: Optional[torch.amp.GradScaler],
        window: StepWindow,
    ) -> None:
        self.optimizer, self.schedule, self.scaler, self.window = (
            optimizer,
            schedule,
            scaler,
            window,
        )
        self.step, self.skipped, self.elapsed_before = 0, 0, 0.0
        self.best = BestRecord()

    def state_dict(self, elapsed: float, device: torch.device) -> dict[str, Any]:
        """The state for ``state.pt``, with ``elapsed`` seconds of wall time so far."""
        cuda = device.type == "cuda"
        return {
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "skipped": self.skipped,
            "window": self.window.state_dict(),
            "best": dataclasses.asdict(self.best),
            "elapsed_s": elapsed,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if cuda else [],
            },
        }

    def load(self, state: dict[str, Any], device: torch.device, resume: bool, path: Path) -> None:
        """Take the optimizer's state; on ``resume`` also the step, counters, schedule, loss
        scale and RNG (a NaN-guard restore keeps its own step and lr). ``ModelFileError``
        naming ``path`` when the state does not fit."""
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            if not resume:
                return
            self.schedule.load_state_dict(state["schedule"])
            self.step, self.skipped = int(state["step"]), int(state["skipped"])
            self.elapsed_before = float(state["elapsed_s"])
            if "window" in state:  # older checkpoints start an empty window
                self.window.load_state_dict(state["window"])
            if "best" in state:
                self.best = BestRecord(**state["best"])
            if self.scaler is not None and state.get("scaler"):  # fp16's loss scale
                self.scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["rng"]["torch"])
            if device.type == "cuda" and state["rng"]["cuda"]:
                torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        except (KeyError, ValueError, TypeError) as error:
            raise ModelFileError(f"{path} does not fit this run: {error!r}") from None
