"""The learning-rate schedule: linear warm-up, then constant or cosine decay."""

from __future__ import annotations

import math
from typing import Any

from torch.optim import Optimizer


class LRSchedule:
    """``lr(s) = lr * scale * min(1, (s + 1) / warmup) * decay(s)`` at step ``s`` (0-based).

    ``decay`` is 1 (``"constant"``, the paper) or ``(1 + cos(pi * s / total)) / 2``
    (``"cosine"``). ``scale`` starts at 1 and is lowered by the NaN guard; it is the
    schedule's only state.
    """

    def __init__(self, lr: float, warmup_steps: int, total_steps: int, kind: str = "constant"):
        if kind not in ("constant", "cosine"):
            raise ValueError(f"lr schedule must be 'constant' or 'cosine', got {kind!r}")
        self.lr, self.warmup, self.total, self.kind = lr, max(warmup_steps, 1), total_steps, kind
        self.scale = 1.0

    def __call__(self, step: int) -> float:
        factor = min(1.0, (step + 1) / self.warmup)
        if self.kind == "cosine":
            factor *= 0.5 * (1.0 + math.cos(math.pi * min(step / max(self.total, 1), 1.0)))
        return self.lr * self.scale * factor

    def apply(self, optimizer: Optimizer, step: int) -> float:
        """Set every parameter group's ``lr`` for ``step``; returns it."""
        lr = self(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale = float(state["scale"])
