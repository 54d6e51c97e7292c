"""A run's checkpoints and the NaN guard that falls back on them.

The keeper writes a checkpoint only from a known-good state (finite weights and optimizer
state, the last step taken); rank 0 writes and every rank waits. When a state is not
known-good, or ``nan_patience`` steps in a row were skipped, it restores the last checkpoint
(known-good, since only such are written) and scales the learning rate by ``nan_lr_factor``;
:class:`~.recovery.Recovery` decides when a run that keeps diverging must stop instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple, Optional

import torch

from ..flow import Flow
from ..store.data import DataSpec
from ..store.loader import checkpoint_dir
from . import distributed
from .checkpoint import (
    STATE_FILE,
    checkpoint_path,
    load_checkpoint_weights,
    prune_checkpoints,
    read_run_config,
    read_state,
    save_checkpoint,
)
from .config import TrainConfig, check_resumable
from .ema import EMA
from .recovery import Recovery, checkpoint_problem
from .state import TrainingState


class Modules(NamedTuple):
    """What a checkpoint holds the weights of: the flow, the dequantizer, the EMA (or
    ``None``), and the objective and optimizer whose states must be finite to be kept."""

    flow: Flow
    dequantizer: torch.nn.Module
    ema: Optional[EMA]
    objective: torch.nn.Module
    optimizer: torch.optim.Optimizer


class CheckpointKeeper:
    """Writes, checks and restores one run's checkpoints (see the module docstring).

    Args:
        run_dir: the run folder.
        config: the run's settings (``keep_checkpoints``, the NaN guard's, the lr).
        data: the run's data record, stored with every checkpoint.
        process: this process of the run.
        modules: the modules whose weights a checkpoint holds.
        state: the training state (step, counters, optimizer, schedule, window, RNG).
        elapsed: the run's wall time so far, stored with a checkpoint.
        say: prints a line for the user (rank 0).
    """

    def __init__(
        self,
        run_dir: Path,
        config: TrainConfig,
        data: DataSpec,
        process: distributed.Process,
        modules: Modules,
        state: TrainingState,
        elapsed: Callable[[], float],
        say: Callable[[str], None],
    ) -> None:
        self.run_dir, self.config, self.data, self.process = run_dir, config, data, process
        self.modules, self.state, self.elapsed, self.say = modules, state, elapsed, say
        self.recovery = Recovery(config.nan_max_restores)
        self.last: Optional[Path] = None  # the newest checkpoint written (known-good)

    def restore(self, folder: Path, resume: bool) -> None:
        """Load weights, EMA and optimizer from checkpoint ``folder``; on ``resume`` also the
        step, counters, schedule and RNG states, after checking the run's settings (the NaN
        guard keeps its own step and lr)."""
        state = read_state(folder)
        if resume:
            check_resumable(read_run_config(folder), self.config, folder)
        ema = self.modules.ema.module if self.modules.ema is not None else None
        load_checkpoint_weights(folder, self.modules.flow, self.modules.dequantizer, ema)
        self.state.load(state, self.process.device, resume, folder / STATE_FILE)

    def problem(self) -> Optional[str]:
        """Why the current state may not be checkpointed (``None``: it may); the same on every
        rank (:func:`~.recovery.checkpoint_problem`)."""
        return checkpoint_problem(
            bool(int(self.state.window.bad_run)),
            self.state.step,
            self.modules.objective.state_dict(),
            self.modules.optimizer.state_dict()["state"],
        )

    def save(self) -> Optional[Path]:
        """Checkpoint the current step if it is known-good; returns its folder (also kept as
        :attr:`last`), or ``None`` after recovering from a bad state instead."""
        problem = self.problem()
        if problem is not None:
            self.recover(f"not checkpointing step {self.state.step}: {problem}")
            return None
        self.last = self.write()
        self.recovery.checkpointed(self.state.step, self.state.skipped)
        return self.last

    def write(self, name: Optional[str] = None) -> Path:
        """Write the current state as checkpoint ``name`` (default: this step's, pruning old
        ones); rank 0 writes, everyone waits. Returns its folder."""
        if self.process.is_main:
            modules = self.modules
            ema = modules.ema.module if modules.ema is not None else None
            save_checkpoint(
                self.run_dir,
                self.state.step,
                modules.flow,
                self.config,
                self.data,
                self.state.state_dict(self.elapsed(), self.process.device),
                ema,
                name,
                modules.dequantizer,
            )
            if name is None:
                prune_checkpoints(self.run_dir, self.config.keep_checkpoints)
        distributed.barrier(self.process)
        root = checkpoint_dir(self.run_dir)
        return root / name if name else checkpoint_path(self.run_dir, self.state.step)

    def recover(self, reason: str) -> None:
        """Restore :attr:`last` and scale the learning rate by ``nan_lr_factor``, or stop
        (:class:`~.recovery.Recovery`)."""
        assert self.last is not None
        config, schedule = self.config, self.state.schedule
        self.recovery.restore(
            reason,
            self.state.step,
            self.state.skipped,
            f"{config.nan_max_restores} restores of {self.last} with the learning rate lowered "
            f"to {schedule(self.state.step):.3g} did not help. Start a fresh run with a lower "
            f"--lr (this run: {config.lr:g}), more --warmup-steps or a --max-grad-norm",
        )
        self.restore(self.last, resume=False)
        schedule.scale *= config.nan_lr_factor
        self.state.window.clear_skips()
        self.say(
            f"{reason}: restored {self.last} and lowered the learning rate "
            f"to {schedule(self.state.step):.3g}"
        )

    def check_skips(self) -> None:
        """Count the skipped steps (a host read); after ``nan_patience`` in a row restore the
        last checkpoint and lower the learning rate."""
        skipped, worst = self.state.window.read_skips()
        if not skipped:
            return
        self.state.skipped += skipped
        self.say(
            f"non-finite loss or gradient: step skipped ({skipped} up to step {self.state.step})"
        )
        if worst >= self.config.nan_patience:
            self.recover(f"{worst} non-finite steps in a row")
