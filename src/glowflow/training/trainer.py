"""The training loop: one readable class that runs alone or under torchrun unchanged.

``train(config)`` loads the splits (:mod:`.splits`), builds the run family's flow and the
dequantizer, initializes ActNorm from data (or resumes a checkpoint), then steps
(:func:`.step.training_step`) until ``max_steps`` or the ``max_time`` budget is spent. Every
``log_every`` steps a metrics row, every ``eval_every`` a validation (a new best writes
``checkpoints/best``), every ``sample_every`` sample grids, every ``checkpoint_every`` a
checkpoint (known-good states only, the NaN guard falling back on them: :mod:`.keeper`); and
at each of the budget's ``validations`` marks (:mod:`.budget`) all three, so a run chooses its model
however fast the machine, the last at the end of the budget. At the end the best and the last
checkpoints are evaluated on the test set, each bound named (:mod:`.report`). Only rank 0
writes; a run folder has one writer (:mod:`.run_lock`).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch
from tqdm import tqdm

from ..flow import Flow
from ..store.atomic import write_text_atomically
from ..store.loader import BEST, checkpoint_dir
from . import distributed
from .batches import step_loader
from .budget import Budget, Cadence
from .checkpoint import (
    checkpoint_path,
    load_run,
    remove_if_unused,
    remove_stale_temporaries,
    start_checkpoint,
)
from .config import TrainConfig
from .ema import EMA
from .environment import TorchSettings, startup_line
from .evaluate import BpdResult, shared_bpd, test_bounds
from .images import save_run_samples
from .init_from import start_from
from .keeper import CheckpointKeeper, Modules
from .model import build_dequantizer, build_flow, initialize_from_data, run_data
from .recovery import TrainingDiverged
from .report import (
    Evaluated,
    TrainResult,
    bar_postfix,
    progress_bar,
    run_entries,
    train_result,
    write_report,
)
from .run_lock import RunLock
from .run_log import RunLog
from .splits import load_splits
from .state import BestRecord, TrainingState
from .step import StepOutput, step_inputs, training_parts, training_step, wrapped
from .window import StepWindow


def run_dir_of(config: TrainConfig) -> Path:
    """``config.run_dir``, or ``runs/<name>`` when empty."""
    return Path(config.run_dir or f"runs/{config.name}")


def train(config: TrainConfig, resume: Optional[str] = None) -> TrainResult:
    """Train a flow as ``config`` says, writing the run folder; see the module docstring.

    Args:
        config: the resolved configuration.
        resume: ``None`` (a fresh run; an existing checkpoint in the run folder is an error),
            ``"auto"`` (continue from the run folder's newest checkpoint, or start fresh if it
            has none) or a checkpoint path.
    """
    trainer = Trainer(config, resume)
    try:
        result = trainer.run()
    except BaseException as error:
        trainer.close()
        lost = distributed.lost_peer(error, trainer.process)
        if lost is not None:
            raise lost from None
        raise
    trainer.close(finished=True)
    return result


class Trainer:
    """State of one training run; :func:`train` is the entry point."""

    def __init__(self, config: TrainConfig, resume: Optional[str] = None) -> None:
        self.config = config
        self.log: Optional[RunLog] = None
        self.process = distributed.setup(config.device)
        self.device = self.process.device
        self.torch_settings = TorchSettings(config)
        self.started = time.perf_counter()
        self.budget = Budget(config.max_steps, config.max_time, config.validations)
        self.now = 0.0  # the agreed clock (:meth:`_tick`)
        self.run_dir = run_dir_of(config)
        self.lock: Optional[RunLock] = None
        try:
            if self.process.is_main:  # one writer per run folder; leftovers of killed writes go
                self.lock = RunLock(self.run_dir).acquire()
                for path in remove_stale_temporaries(self.run_dir):
                    self._say(f"removed {path}, left by a killed write")
            self._set_up(resume)
        except BaseException:
            self.close()
            if self.lock is not None:
                remove_if_unused(self.run_dir)
            raise

    def _set_up(self, resume: Optional[str]) -> None:
        """Data, model, optimizer; then a fresh initialization or the resumed checkpoint."""
        config = self.config
        start = start_checkpoint(self.run_dir, resume, self._say)
        self.train_set, self.val_set, self.test_set = load_splits(config, self.process, self._say)
        self.data = run_data(config, self.train_set)
        self.flow: Flow = build_flow(config, self.data).to(self.device)
        self.dequantizer = build_dequantizer(config, self.data).to(self.device)
        parts = training_parts(self.flow, self.dequantizer, config, self.device)
        self.objective, self.optimizer, self.schedule, self.scaler = parts
        self.window = StepWindow(self.device)
        self.state = TrainingState(self.optimizer, self.schedule, self.scaler, self.window)
        self.lr = config.lr
        if start is None and config.init_from:
            said = start_from(config.init_from, self.flow, self.dequantizer, self.data, self.device)
            self._say(said)
        elif start is None:
            initialize_from_data(self.flow, self.train_set, config, self.data.n_bins, self.device)
        self.ema = EMA(self.flow, config.ema_decay) if config.ema_decay > 0 else None
        modules = Modules(self.flow, self.dequantizer, self.ema, self.objective, self.optimizer)
        self.keeper = CheckpointKeeper(
            self.run_dir,
            config,
            self.data,
            self.process,
            modules,
            self.state,
            self.elapsed,
            self._say,
        )
        if start is not None:
            self.keeper.restore(start, resume=True)
            self.keeper.last = start
            self._say(f"resumed from {start} at step {self.state.step}")
        self._tick()
        self.cadence = Cadence(config, self.budget, self.state.step, self.now)
        splits = (("train", self.train_set), ("val", self.val_set), ("test", self.test_set))
        world = self.process.world_size
        self._say(startup_line(config, self.flow, self.device, world, splits, self.run_dir))
        self.model = wrapped(self.objective, config, self.process.distributed)
        if config.compile:
            self._say("compiling with torch.compile: the first steps take a minute or more")
        if self.process.is_main:
            text = json.dumps(config.to_dict(), indent=2)
            write_text_atomically(self.run_dir / "config.json", text)
            self.log = RunLog(self.run_dir, self.state.step if start else None, config.tensorboard)
        if start is None and self.keeper.problem() is not None:
            raise TrainingDiverged(
                "the initialized model is not finite: check the data (constant images?) and "
                "--init-images"
            )
        if start is None:
            self.keeper.save()

    # ------------------------------------------------------------------------------ set-up
    def _say(self, message: str) -> None:
        if self.process.is_main:
            tqdm.write(f"glowflow train: {message}", file=sys.stderr)

    # ---------------------------------------------------------------------------- stepping
    def elapsed(self) -> float:
        """This process's training wall time, resumed sessions added up."""
        return self.state.elapsed_before + time.perf_counter() - self.started

    def _tick(self) -> None:
        """Read the clock the budget's decisions take (:attr:`now`): every step when alone;
        under torchrun rank 0's every ``log_every`` steps, so every rank stops, validates and
        anneals its learning rate at the same step."""
        if not self.process.distributed:
            self.now = self.elapsed()
        elif self.state.step % self.config.log_every == 0:
            self.now = distributed.rank0_value(self.elapsed(), self.process)

    @property
    def eval_flow(self) -> Flow:
        """The weights evaluated and sampled: the EMA when kept, else the trained ones."""
        return self.ema.module if self.ema is not None else self.flow

    def train_step(self, levels: torch.Tensor, labels: torch.Tensor) -> StepOutput:
        """One optimizer step on a batch of integer levels (see :mod:`.step`)."""
        config, process = self.config, self.process
        self.lr = self.schedule.apply(self.optimizer, self.state.step, self.progress())
        levels = levels.to(self.device, non_blocking=True)
        where = (self.state.step, process.rank, process.world_size)
        inputs = step_inputs(levels, labels, self.dequantizer, config, *where)
        return training_step(
            self.model,
            self.optimizer,
            inputs,
            config.max_grad_norm,
            self.ema,
            self.state.step,
            self.scaler,
        )

    def _bpd(self, dataset: Any, draws: int) -> BpdResult:
        """Bits/dim (the dequantization bound) of the :attr:`eval_flow` on ``dataset``, each
        process taking every ``world``-th image."""
        return shared_bpd(
            self.eval_flow, dataset, self.dequantizer, draws, self.config, self.process
        )

    def _validate(self) -> dict[str, Any]:
        """Validation bits/dim; a new best writes ``checkpoints/best`` (known-good states
        only); returns the metrics-row entries."""
        assert self.val_set is not None
        result = self._bpd(self.val_set, self.config.eval_draws)
        best = self.state.best
        best.validations += 1
        if math.isfinite(result.bpd) and result.bpd < best.val_bpd:
            if self.keeper.problem() is None:
                self.state.best = BestRecord(self.state.step, result.bpd, 0, best.validations)
                self.keeper.write(BEST)
        else:
            best.evals_since += 1
        return {"val_bpd": result.bpd, "val_bpd_stderr": result.stderr}

    def progress(self) -> float:
        """The fraction of the budget spent (:meth:`.Budget.progress`): a budgeted run anneals
        its learning rate in time."""
        return self.budget.progress(self.state.step, self.now)

    @property
    def done(self) -> bool:
        """``max_steps`` taken, or the ``max_time`` budget spent."""
        return self.budget.spent(self.state.step, self.now)

    @property
    def early_stop(self) -> bool:
        """Whether ``early_stopping`` validations in a row brought no improvement."""
        patience = self.config.early_stopping
        return bool(patience) and self.state.best.evals_since >= patience

    def _samples(self) -> None:
        flow, was_training = self.eval_flow, self.eval_flow.training
        flow.eval()
        paths = save_run_samples(flow, self.config, self.data, self.state.step, self.run_dir)
        flow.train(was_training)
        if self.log is not None:
            self.log.images(paths, self.state.step)

    def _periodic(self, bar: tqdm) -> None:
        """Metrics row, test evaluation, sample grids and checkpoint when due; the only place
        the host reads the step's results."""
        step, window = self.state.step, self.window
        due = self.cadence.due(step, self.now, self.val_set is not None, self.test_set is not None)
        if not due.anything:
            return
        window.pause()
        self.keeper.check_skips()
        if due.log or due.validate or due.test:
            row: dict[str, Any] = window.row(self.process)
            if due.validate:
                row.update(self._validate())
            if due.test:
                result = self._bpd(self.test_set, self.config.eval_draws)
                row.update(test_bpd=result.bpd, test_bpd_stderr=result.stderr)
            row.update(
                step=step, lr=self.lr, skipped_steps=self.state.skipped, elapsed_s=self.elapsed()
            )
            if self.log is not None:
                self.log.write(**row)
            bar.set_postfix(bar_postfix(row))
        if self.process.is_main and due.sample:
            self._samples()
        if due.checkpoint:
            self.keeper.save()
        window.resume()

    def run(self) -> TrainResult:
        """Train up to ``max_steps``, then evaluate with ``final_eval_draws`` and finish the
        run folder (``result.json``, ``bpd.png``)."""
        config, process = self.config, self.process
        batches = iter(step_loader(self.train_set, config, process, self.state.step, self.device))
        bar = progress_bar(config, process.is_main, self.state.step)
        if config.init_from and self.state.step == 0 and self.val_set is not None:
            row = self._validate()  # the starting weights are a candidate too
            if self.log is not None:
                self.log.write(step=0, lr=0.0, elapsed_s=self.elapsed(), **row)
        self.flow.train()
        self.window.resume()
        while not (self.done or self.early_stop):
            levels, labels = next(batches)
            self.window.add(self.train_step(levels, labels), levels.shape[0])
            self.state.step += 1
            self._tick()
            bar.update(1)
            self._periodic(bar)
        bar.close()
        return self._finish()

    # ------------------------------------------------------------------------------ finish
    def _final_test(self, flow: Flow, dequantizer: torch.nn.Module, label: str) -> tuple:
        """The bounds measured on the test split (:func:`~.evaluate.test_bounds`)."""
        if self.test_set is None:
            return ()
        return test_bounds(flow, dequantizer, self.test_set, self.config, self.process, label)

    def _finish(self) -> TrainResult:
        """Checkpoint the final state, evaluate the last and the best checkpoints on the test
        set, and write ``result.json``, ``bpd.png`` and TensorBoard's hyper-parameters."""
        if self.keeper.last != checkpoint_path(self.run_dir, self.state.step):
            self.keeper.save()
        tested = self._final_test(self.eval_flow, self.dequantizer, "last")
        assert self.keeper.last is not None
        last = best = Evaluated(self.state.step, self.keeper.last, tested)
        chosen = self.state.best.step >= 0  # by a validation; else the last is the best
        if self.val_set is not None and chosen:
            folder = checkpoint_dir(self.run_dir) / BEST
            loaded, _ = load_run(folder, self.device)
            tested = self._final_test(loaded.flow, loaded.dequantizer, "best")
            best = Evaluated(self.state.best.step, folder, tested)
        wall = self.elapsed()
        metrics: list[dict[str, Optional[float]]] = []
        if self.process.is_main:
            run = run_entries(
                self.config, self.state, self.data, wall, self.early_stop, self.process.world_size
            )
            metrics = write_report(self.run_dir, self.config.name, best, last, run, self.device)
            if self.log is not None:
                head = best.headline
                val = self.state.best.val_bpd if chosen else None
                self.log.finish(
                    self.config, {"test_bpd": head and head.result.bpd, "best_val_bpd": val}
                )
        validations = self.state.best.validations if chosen else 0
        return train_result(self.run_dir, self.state.step, wall, best, last, metrics, validations)

    def close(self, finished: bool = False) -> None:
        """Close the log, release the run folder and torch's settings, end the process group
        (waiting for the other ranks when the run ``finished``)."""
        if self.log is not None:
            self.log.close()
        if self.lock is not None:
            self.lock.release()
        self.torch_settings.restore()
        distributed.teardown(self.process, finished)
