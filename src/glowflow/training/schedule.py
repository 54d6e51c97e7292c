"""The learning-rate schedule: linear warm-up, then constant or cosine decay."""

from __future__ import annotations

import math
from typing import Any, Optional

from torch.optim import Optimizer

from ..errors import ConfigError


class LRSchedule:
    """``lr(s) = lr * scale * min(1, (s + 1) / warmup) * decay(p)`` at step ``s`` (0-based).

    ``decay`` is 1 (``"constant"``, the paper) or ``(1 + cos(pi * p)) / 2`` (``"cosine"``),
    with ``p`` the fraction of the run done: ``s / total`` unless the caller gives another
    (a time budget's fraction spent). ``scale`` starts at 1 and is lowered by the NaN guard;
    it is the schedule's only state.
    """

    def __init__(self, lr: float, warmup_steps: int, total_steps: int, kind: str = "constant"):
        if kind not in ("constant", "cosine"):
            raise ConfigError(f"lr schedule must be 'constant' or 'cosine', got {kind!r}")
        self.lr, self.warmup, self.total, self.kind = lr, max(warmup_steps, 1), total_steps, kind
        self.scale = 1.0

    def __call__(self, step: int, progress: Optional[float] = None) -> float:
        factor = min(1.0, (step + 1) / self.warmup)
        if self.kind == "cosine":
            done = min(step / max(self.total, 1), 1.0) if progress is None else progress
            factor *= 0.5 * (1.0 + math.cos(math.pi * done))
        return self.lr * self.scale * factor

    def apply(self, optimizer: Optimizer, step: int, progress: Optional[float] = None) -> float:
        """Set every parameter group's ``lr`` for ``step`` (and ``progress``); returns it."""
        lr = self(step, progress)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale = float(state["scale"])
