"""A run's budget: how far through it the run is, when it is spent, and when the budget's own
validations are due.

With a step limit ``S`` (``max_steps``; 0: none) and a time limit ``T`` (``max_time`` seconds;
0: none), the fraction done after ``s`` steps and ``t`` seconds is

    p(s, t) = min(1, max(s / S, t / T))        (a term only where its limit is set)

and the run is done at ``p = 1``. With ``V`` budget validations (``validations``; 0: none),
the ``k``-th is due when ``p`` first reaches ``k / V`` (``k = 1..V``), whichever of steps and
seconds gets there first, so a run validates ``V`` times however fast its machine is; the
last is the one at the end of the budget, before the best checkpoint is chosen. The step
cadence ``eval_every`` adds its validations to these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Budget:
    """``max_steps`` (0: no step limit), ``max_time`` (seconds, 0: none) and ``validations``
    (the budget's validations, 0: none); see the module docstring."""

    max_steps: int
    max_time: float
    validations: int

    def progress(self, step: int, elapsed: float) -> float:
        """``p(step, elapsed)``: the fraction of the budget spent, in ``[0, 1]``."""
        fractions = [step / self.max_steps] if self.max_steps else []
        fractions += [elapsed / self.max_time] if self.max_time else []
        return min(max(fractions, default=0.0), 1.0)

    def spent(self, step: int, elapsed: float) -> bool:
        """Whether ``max_steps`` are taken or the ``max_time`` budget is spent."""
        return self.progress(step, elapsed) >= 1.0

    def mark(self, step: int, elapsed: float) -> int:
        """``floor(p * V)``: how many of the budget's validations are due by now; one is due
        whenever this grows past its value at the last check."""
        return math.floor(self.progress(step, elapsed) * self.validations + 1e-9)


@dataclass(frozen=True)
class Due:
    """What is due after a step: a metrics row, a validation, a test evaluation (rows asked
    for with ``test_every``), sample grids, a checkpoint."""

    log: bool
    validate: bool
    test: bool
    sample: bool
    checkpoint: bool

    @property
    def anything(self) -> bool:
        return self.log or self.validate or self.test or self.sample or self.checkpoint


class Cadence:
    """When a run's periodic work is due: every ``log_every``, ``eval_every``,
    ``test_every``, ``sample_every`` and ``checkpoint_every`` steps, at each of the
    :class:`Budget`'s validation marks (all of them), and at the end of the budget (all)."""

    def __init__(self, config: Any, budget: Budget, step: int, elapsed: float) -> None:
        self.config, self.budget = config, budget
        self.mark = budget.mark(step, elapsed)  # the marks passed by the last check

    def due(self, step: int, elapsed: float, has_val: bool, has_test: bool) -> Due:
        """What is due after ``step`` at ``elapsed`` seconds (``has_val``, ``has_test``: the
        run has those splits); a budget mark counts once."""
        config = self.config
        mark = self.budget.mark(step, elapsed)
        every = self.budget.spent(step, elapsed) or mark > self.mark
        self.mark = mark
        due = lambda cadence: every or step % cadence == 0  # noqa: E731
        return Due(
            log=due(config.log_every),
            validate=has_val and due(config.eval_every),
            test=has_test and bool(config.test_every) and due(config.test_every),
            sample=due(config.sample_every),
            checkpoint=due(config.checkpoint_every),
        )
