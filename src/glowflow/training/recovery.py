"""The NaN guard's bookkeeping: when a restore of the last known-good checkpoint is allowed,
and when a run that keeps diverging must stop."""

from __future__ import annotations

from typing import Optional

from ..errors import GlowflowError
from ..validation import first_non_finite


class TrainingDiverged(GlowflowError, RuntimeError):
    """Training cannot recover from non-finite values; the message says what to change."""


class Recovery:
    """Counts restores not yet followed by progress. A restore counts as followed by progress
    once a checkpoint is written after it with most of the steps since it taken; after
    ``max_restores`` restores without progress the run stops with :class:`TrainingDiverged`."""

    def __init__(self, max_restores: int) -> None:
        self.max_restores = max_restores
        self.restores = 0
        self.restored_at = (0, 0)  # (step, skipped steps) at the last restore

    def checkpointed(self, step: int, skipped: int) -> None:
        """A checkpoint was written at ``step`` with ``skipped`` steps skipped in all."""
        steps, skips = step - self.restored_at[0], skipped - self.restored_at[1]
        if steps and 2 * skips < steps:  # most steps since the last restore were taken
            self.restores = 0

    def restore(self, reason: str, step: int, skipped: int, advice: str) -> None:
        """Allow one more restore at ``step``, or raise :class:`TrainingDiverged` with
        ``reason`` and ``advice`` when the run has had its ``max_restores``."""
        self.restores += 1
        if self.restores > self.max_restores:
            raise TrainingDiverged(f"training diverged: {reason}, and {advice}")
        self.restored_at = (step, skipped)


def checkpoint_problem(
    last_step_skipped: bool, step: int, model_state: dict, optimizer_state: dict
) -> Optional[str]:
    """Why the current state may not be checkpointed (``None``: it may): a last step that was
    skipped, or a non-finite weight or optimizer state (named)."""
    if last_step_skipped:
        return f"step {step} was skipped (non-finite loss or gradient)"
    return first_non_finite({"model": model_state, "optimizer": optimizer_state}, "")
