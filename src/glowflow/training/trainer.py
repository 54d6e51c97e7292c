"""The training loop: one process or many under ``torchrun`` (DDP), unchanged.

Per step ``s`` (0-based): ``lr(s)`` from :class:`LRSchedule`; a batch of integer levels
(:class:`StepBatches`), uniformly dequantized to ``x`` with a generator seeded by
``(seed, s, rank)``; then :func:`~glowflow.training.step.training_step` (the step the benchmark
times too): loss ``mean_i bpd(x_i) + class_loss_weight * CE(logits, y)``, backward,
gradient-norm clipping, the optimizer step and the EMA update, skipped when the loss or the
gradient norm is non-finite. The step's results, the skip counters and the metrics window stay
on the device; the host reads them only when a metrics row, an evaluation or a checkpoint is
due. ``nan_patience`` skipped steps in a row, seen at such a point, restore the last checkpoint
and multiply the learning rate by ``nan_lr_factor``. Only rank 0 writes files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data import dequantize, load_dataset
from ..flow import Flow
from ..precision import make_grad_scaler
from . import distributed
from .atomic import write_text_atomically
from .batches import StepBatches, noise_generator, take_images
from .checkpoint import (
    BEST,
    EMA_FILE,
    MODEL_FILE,
    checkpoint_dir,
    checkpoint_path,
    first_non_finite,
    list_checkpoints,
    load_dequantizer,
    load_run,
    load_weights,
    prune_checkpoints,
    read_run_config,
    read_state,
    read_weights,
    remove_stale_temporaries,
    resolve_checkpoint,
    save_checkpoint,
)
from .config import RESUME_MAY_CHANGE, TrainConfig, resume_conflicts
from .ema import EMA
from .evaluate import BpdResult, bpd_sums, summarize
from .images import save_sample_grids
from .model import DatasetInfo, build_dequantizer, build_flow
from .plots import plot_bpd_curves
from .run_lock import RunLock
from .run_log import RunLog, read_metrics
from .schedule import LRSchedule
from .step import Objective, StepOutput, make_optimizer, training_step


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        run_dir: the run folder.
        steps: optimizer steps taken in total (skipped ones included).
        test_bpd: test bits/dim of the best checkpoint, averaged over
            ``config.final_eval_draws`` draws (NaN when the dataset has no test split).
        test_bpd_stderr: its standard error over test images.
        wall_time_s: wall time of the run, resumed sessions added up.
        checkpoint: the final checkpoint folder.
        metrics: the rows of ``metrics.csv`` (rank 0; empty on other ranks).
        best_checkpoint: the checkpoint chosen by validation bits/dim (``checkpoints/best``;
            the final one when the run has no validation split).
        last_test_bpd: the final checkpoint's test bits/dim.
    """

    run_dir: Path
    steps: int
    test_bpd: float
    test_bpd_stderr: float
    wall_time_s: float
    checkpoint: Path
    metrics: list[dict[str, Optional[float]]]
    best_checkpoint: Path
    last_test_bpd: float


def machine_description(device: torch.device) -> str:
    """The CPU model and core count, plus the GPU when ``device`` is one (for result.json)."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        models = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = models[0] if models else cpu
    text = f"{cpu}, {os.cpu_count()} cores"
    if device.type == "cuda":
        text += f", {torch.cuda.get_device_name(device)}"
    return text


def run_dir_of(config: TrainConfig) -> Path:
    """``config.run_dir``, or ``runs/<name>`` when empty."""
    return Path(config.run_dir or f"runs/{config.name}")


def train(config: TrainConfig, resume: Optional[str] = None) -> TrainResult:
    """Train a Glow as ``config`` says, writing the run folder; see the module docstring.

    Args:
        config: the resolved configuration.
        resume: ``None`` (a fresh run; an existing checkpoint in the run folder is an error),
            ``"auto"`` (continue from the run folder's newest checkpoint, or start fresh if it
            has none) or a checkpoint path.
    """
    trainer = Trainer(config, resume)
    try:
        return trainer.run()
    finally:
        trainer.close()


@dataclass
class BestRecord:
    """The best validation result so far: its step, bits/dim, and the validations since."""

    step: int = -1
    val_bpd: float = math.inf
    evals_since: int = 0


class TrainingDiverged(RuntimeError):
    """Training cannot recover from non-finite values; the message says what to change."""


class _Window:
    """The steps since the last metrics row, on the training device: sums of bits/dim and
    gradient norm over taken steps, taken steps, images; the skip counters; and the wall time
    spent stepping (periodic work excluded). Saved with every checkpoint, so a resumed run
    writes the same rows as an uninterrupted one."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(4, dtype=torch.float64, device=device)
        self.bad_run = torch.zeros((), dtype=torch.long, device=device)  # skipped in a row
        self.worst_run = torch.zeros((), dtype=torch.long, device=device)
        self.skipped = torch.zeros((), dtype=torch.long, device=device)  # since the last read
        self.seconds = 0.0
        self.started = time.perf_counter()

    def add(self, out: StepOutput, images: int) -> None:
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

    def row(self, process: distributed.Process) -> dict[str, Optional[float]]:
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


class Trainer:
    """State of one training run; :func:`train` is the entry point."""

    def __init__(self, config: TrainConfig, resume: Optional[str] = None) -> None:
        self.config = config
        self.log: Optional[RunLog] = None
        self.process = distributed.setup(config.device)
        self.device = self.process.device
        self._deterministic_before = torch.are_deterministic_algorithms_enabled()
        self._threads_before = torch.get_num_threads()
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        if config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        torch.manual_seed(config.seed)
        self.started = time.perf_counter()
        self.run_dir = run_dir_of(config)
        self.lock: Optional[RunLock] = None
        self.restores = 0  # recoveries not yet followed by progress
        self.restored_at = (0, 0)  # (step, skipped steps) at the last restore
        try:
            if self.process.is_main:  # one writer per run folder; leftovers of killed writes go
                self.lock = RunLock(self.run_dir).acquire()
                for path in remove_stale_temporaries(self.run_dir):
                    self._say(f"removed {path}, left by a killed write")
            self._set_up(resume)
        except BaseException:
            self.close()
            raise

    def _set_up(self, resume: Optional[str]) -> None:
        """Data, model, optimizer; then a fresh initialization or the resumed checkpoint."""
        config = self.config
        start = self._find_start(resume)
        self.train_set, self.val_set, self.test_set = self._load_data()
        self.info = DatasetInfo.of(config.dataset, self.train_set)
        self.flow: Flow = build_flow(config, self.info).to(self.device)
        self.dequantizer = build_dequantizer(config, self.info).to(self.device)
        self.objective = Objective(
            self.flow, self.dequantizer, config.class_loss_weight, config.precision
        )
        self.scaler = make_grad_scaler(config.precision, self.device)  # fp16 only
        self.optimizer = make_optimizer(
            config.optimizer,
            list(self.objective.parameters()),
            config.lr,
            self.device,
            config.weight_decay,
        )
        self.schedule = LRSchedule(
            config.lr, config.warmup_steps, config.max_steps, config.lr_schedule
        )
        self.step, self.skipped, self.elapsed_before, self.lr = 0, 0, 0.0, config.lr
        self.best = BestRecord()
        self.window = _Window(self.device)
        if start is None:
            self._initialize()
        self.ema = EMA(self.flow, config.ema_decay) if config.ema_decay > 0 else None
        if start is not None:
            self._restore(start, resume=True)
            self._say(f"resumed from {start} at step {self.step}")
        self.model: torch.nn.Module = self.objective
        if self.process.distributed:
            self.model = DistributedDataParallel(
                self.objective,
                device_ids=[self.device] if self.device.type == "cuda" else None,
                find_unused_parameters=config.conditional and config.class_loss_weight == 0,
            )
        if config.compile:  # forward and backward of the objective; the step stays eager
            self.model = torch.compile(self.model)
        if self.process.is_main:
            write_text_atomically(
                self.run_dir / "config.json", json.dumps(config.to_dict(), indent=2)
            )
            self.log = RunLog(self.run_dir, self.step if start else None, config.tensorboard)
        if start is None:
            start = self._save()
            if start is None:
                raise TrainingDiverged(
                    "the initialized model is not finite: check the data "
                    "(constant images?) and --init-images"
                )
        self.last_checkpoint: Path = start

    # ------------------------------------------------------------------------------ set-up
    def _say(self, message: str) -> None:
        if self.process.is_main:
            tqdm.write(f"glowflow train: {message}", file=sys.stderr)

    def _find_start(self, resume: Optional[str]) -> Optional[Path]:
        existing = list_checkpoints(self.run_dir)
        if resume is None:
            if existing:
                raise RuntimeError(
                    f"run folder {self.run_dir} already holds checkpoints (newest: "
                    f"{existing[-1].name}); continue it with --resume auto or pick another --run-dir"
                )
            return None
        if resume == "auto":
            if not existing:
                self._say(f"no checkpoint in {self.run_dir}; starting a fresh run")
                return None
            return existing[-1]
        return resolve_checkpoint(resume)

    def _load_data(self) -> tuple[Any, Optional[Any], Optional[Any]]:
        """Train, validation and test sets (``None`` where the dataset has none); rank 0 loads
        (and downloads) first, the others after it. Every split is read and checked now, so a
        broken test image stops the run before training, not after it."""
        config, main = self.config, self.process.is_main
        if not main:
            distributed.barrier(self.process)
        celeba = config.dataset == "celeba"  # an official validation partition
        options = dict(
            image_size=config.image_size,
            n_bits=config.n_bits,
            val_size=config.val_size,
            download=config.download and main,
        )
        train_set = load_dataset(
            config.dataset, config.data_root, "train", hflip=config.hflip, **options
        )
        val_set = None
        if config.val_size or celeba:
            val_set = load_dataset(config.dataset, config.data_root, "val", **options)
        try:
            test_set = load_dataset(config.dataset, config.data_root, "test", **options)
        except ValueError as error:
            if "no test split" not in str(error):
                raise
            self._say(f"{error}: the run reports no test bits/dim")
            test_set = None
        if main:
            distributed.barrier(self.process)
        return train_set, val_set, test_set

    def _initialize(self) -> None:
        """Data-dependent ActNorm initialization on ``init_images`` seeded training images."""
        levels, labels = take_images(self.train_set, self.config.init_images, self.config.seed)
        generator = noise_generator(self.device, self.config.seed, -1, 0, 1)
        x = dequantize(levels.to(self.device), self.info.n_bins, generator=generator)
        self.flow.initialize(x, labels.to(self.device) if self.config.conditional else None)

    def _restore(self, folder: Path, resume: bool) -> None:
        """Load weights, EMA and optimizer from a checkpoint; on ``resume`` also the step,
        counters, schedule and RNG states (the NaN guard keeps its own step and lr)."""
        state = read_state(folder)
        weights, _ = read_weights(folder / MODEL_FILE)
        if resume:
            saved = read_run_config(folder)
            conflicts = resume_conflicts(saved, self.config)
            if conflicts:
                raise ValueError(
                    f"{folder} was trained with other settings ({'; '.join(conflicts)}); a "
                    f"resumed run keeps the run's settings except {', '.join(RESUME_MAY_CHANGE)}"
                )
        load_weights(self.flow, folder / MODEL_FILE, weights)
        load_dequantizer(self.dequantizer, folder)
        if self.ema is not None:
            load_weights(self.ema.module, folder / EMA_FILE, read_weights(folder / EMA_FILE)[0])
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            if resume:
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
                if self.device.type == "cuda" and state["rng"]["cuda"]:
                    torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        except (KeyError, ValueError, TypeError) as error:
            raise RuntimeError(f"{folder / 'state.pt'} does not fit this run: {error!r}") from None

    def _known_good(self) -> Optional[str]:
        """Why the current state may not be checkpointed (``None``: it may): a non-finite
        weight or optimizer state, or a last step that was skipped. The same on every rank."""
        if int(self.window.bad_run):
            return f"step {self.step} was skipped (non-finite loss or gradient)"
        return first_non_finite(
            {
                "model": self.objective.state_dict(),
                "optimizer": self.optimizer.state_dict()["state"],
            },
            "",
        )

    def _save(self) -> Optional[Path]:
        """Checkpoint the current step if it is known-good (rank 0 writes, everyone waits);
        returns its folder, or ``None`` after recovering from a bad state instead."""
        problem = self._known_good()
        if problem is not None:
            self._recover(f"not checkpointing step {self.step}: {problem}")
            return None
        folder = self._write_checkpoint()
        steps, skips = self.step - self.restored_at[0], self.skipped - self.restored_at[1]
        if steps and 2 * skips < steps:  # most steps since the last restore were taken
            self.restores = 0
        return folder

    def _write_checkpoint(self, name: Optional[str] = None) -> Path:
        """Write the current state as checkpoint ``name`` (default: this step's, pruning old
        ones); rank 0 writes, everyone waits. Returns its folder."""
        if self.process.is_main:
            state = {
                "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
                "skipped": self.skipped,
                "window": self.window.state_dict(),
                "best": dataclasses.asdict(self.best),
                "elapsed_s": self.elapsed(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "rng": {
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
                },
            }
            save_checkpoint(
                self.run_dir,
                self.step,
                self.flow,
                self.config,
                self.info,
                state,
                self.ema.module if self.ema is not None else None,
                name=name,
                dequantizer=self.dequantizer,
            )
            if name is None:
                prune_checkpoints(self.run_dir, self.config.keep_checkpoints)
        distributed.barrier(self.process)
        return (
            checkpoint_dir(self.run_dir) / name
            if name
            else checkpoint_path(self.run_dir, self.step)
        )

    def _recover(self, reason: str) -> None:
        """Restore the last checkpoint (known-good: only such are written) and scale the
        learning rate by ``nan_lr_factor``. A recovery counts as followed by progress once a
        checkpoint is written after it with most of the steps since it taken; after
        ``nan_max_restores`` recoveries without progress, stop with :class:`TrainingDiverged`."""
        self.restores += 1
        if self.restores > self.config.nan_max_restores:
            raise TrainingDiverged(
                f"training diverged: {reason}, and {self.config.nan_max_restores} restores of "
                f"{self.last_checkpoint} with the learning rate lowered to "
                f"{self.schedule(self.step):.3g} did not help. Start a fresh run with a lower "
                f"--lr (this run: {self.config.lr:g}), more --warmup-steps or a --max-grad-norm"
            )
        self._restore(self.last_checkpoint, resume=False)
        self.restored_at = (self.step, self.skipped)
        self.schedule.scale *= self.config.nan_lr_factor
        self.window.bad_run.zero_()
        self.window.worst_run.zero_()
        self._say(
            f"{reason}: restored {self.last_checkpoint} and lowered the learning rate "
            f"to {self.schedule(self.step):.3g}"
        )

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    @property
    def eval_flow(self) -> Flow:
        """The weights evaluated and sampled: the EMA when kept, else the trained ones."""
        return self.ema.module if self.ema is not None else self.flow

    # ---------------------------------------------------------------------------- stepping
    def train_step(self, levels: torch.Tensor, labels: torch.Tensor) -> StepOutput:
        """One optimizer step on a batch of integer levels (see the module docstring)."""
        config, process = self.config, self.process
        self.lr = self.schedule.apply(self.optimizer, self.step, self.progress())
        levels = levels.to(self.device, non_blocking=True)
        y = labels.to(self.device, non_blocking=True) if config.conditional else None
        generator = noise_generator(
            self.device, config.seed, self.step, process.rank, process.world_size
        )
        noise = self.dequantizer.noise(levels, generator)
        return training_step(
            self.model,
            self.optimizer,
            (levels, y, noise),
            config.max_grad_norm,
            self.ema,
            self.step,
            self.scaler,
        )

    def _check_skips(self) -> None:
        """Count the skipped steps (a host read); after ``nan_patience`` in a row restore the
        last checkpoint and lower the learning rate."""
        skipped, worst = self.window.read_skips()
        if not skipped:
            return
        self.skipped += skipped
        self._say(f"non-finite loss or gradient: step skipped ({skipped} up to step {self.step})")
        if worst >= self.config.nan_patience:
            self._recover(f"{worst} non-finite steps in a row")

    def evaluate(
        self,
        dataset: Any,
        draws: int,
        flow: Optional[Flow] = None,
        dequantizer: Optional[torch.nn.Module] = None,
    ) -> BpdResult:
        """Bits/dim (the dequantization bound) of ``flow`` and ``dequantizer`` (default: the
        run's :attr:`eval_flow` and dequantizer) on ``dataset``, each process taking every
        ``world``-th image."""
        indices = range(self.process.rank, len(dataset), self.process.world_size)
        sums = bpd_sums(
            flow or self.eval_flow,
            dataset,
            dequantizer or self.dequantizer,
            draws=draws,
            batch_size=self.config.eval_batch_size,
            device=self.device,
            seed=self.config.seed,
            conditional=self.config.conditional,
            indices=indices,
        )
        return summarize(distributed.all_reduce_sum(sums, self.process), draws)

    def _validate(self) -> dict[str, Any]:
        """Validation bits/dim; a new best writes ``checkpoints/best`` (known-good states
        only); returns the metrics-row entries."""
        assert self.val_set is not None
        result = self.evaluate(self.val_set, self.config.eval_draws)
        if math.isfinite(result.bpd) and result.bpd < self.best.val_bpd:
            if self._known_good() is None:
                self.best = BestRecord(self.step, result.bpd, 0)
                self._write_checkpoint(BEST)
        else:
            self.best.evals_since += 1
        return {"val_bpd": result.bpd, "val_bpd_stderr": result.stderr}

    def progress(self) -> float:
        """The fraction of the run done: of ``max_steps``, or of the ``max_time`` budget when
        that is further along (so a budgeted run anneals its learning rate in time)."""
        fraction = self.step / self.config.max_steps
        if self.config.max_time:
            fraction = max(fraction, self.elapsed() / self.config.max_time)
        return min(fraction, 1.0)

    @property
    def done(self) -> bool:
        """``max_steps`` taken, or the ``max_time`` budget spent."""
        return self.step >= self.config.max_steps or (
            bool(self.config.max_time) and self.elapsed() >= self.config.max_time
        )

    @property
    def early_stop(self) -> bool:
        """Whether ``early_stopping`` validations in a row brought no improvement."""
        patience = self.config.early_stopping
        return bool(patience) and self.best.evals_since >= patience

    def _samples(self) -> None:
        config, flow = self.config, self.eval_flow
        y, nrow = None, None
        if config.conditional:
            classes = int(self.info.num_classes or 0)
            y = torch.arange(config.sample_count, device=self.device) % classes
            nrow = classes
        was_training = flow.training
        flow.eval()
        save_sample_grids(
            flow,
            config.sample_count,
            config.sample_temperatures,
            self.info.n_bins,
            config.seed,
            lambda t: self.run_dir / "samples" / f"step-{self.step:08d}_t{t:g}.png",
            y,
            nrow,
        )
        flow.train(was_training)

    def _periodic(self, bar: tqdm) -> None:
        """Metrics row, test evaluation, sample grids and checkpoint when due; the only place
        the host reads the step's results."""
        config, step, window = self.config, self.step, self.window
        final = self.done
        due = lambda every: step % every == 0 or final  # noqa: E731
        validate = self.val_set is not None and due(config.eval_every)
        test = self.test_set is not None and config.test_every and due(config.test_every)
        cadences = (
            config.log_every,
            config.eval_every,
            config.sample_every,
            config.checkpoint_every,
        ) + ((config.test_every,) if config.test_every else ())
        if not any(due(every) for every in cadences):
            return
        window.pause()
        self._check_skips()
        if due(config.log_every) or validate or test:
            row: dict[str, Any] = window.row(self.process)
            if validate:
                row.update(self._validate())
            if test:
                result = self.evaluate(self.test_set, config.eval_draws)
                row.update(test_bpd=result.bpd, test_bpd_stderr=result.stderr)
            row.update(step=step, lr=self.lr, skipped_steps=self.skipped, elapsed_s=self.elapsed())
            if self.log is not None:
                self.log.write(**row)
            postfix = {k: f"{row[k]:.3f}" for k in ("train_bpd", "val_bpd") if row.get(k)}
            if row.get("images_per_s"):
                postfix["img/s"] = f"{row['images_per_s']:.0f}"
            bar.set_postfix(postfix)
        if self.process.is_main and due(config.sample_every):
            self._samples()
        if due(config.checkpoint_every):
            self.last_checkpoint = self._save() or self.last_checkpoint
        window.resume()

    def run(self) -> TrainResult:
        """Train up to ``max_steps``, then evaluate with ``final_eval_draws`` and finish the
        run folder (``result.json``, ``bpd.png``)."""
        config, process = self.config, self.process
        sampler = StepBatches(
            self.train_set,
            config.batch_size,
            config.seed,
            process.rank,
            process.world_size,
            start_step=self.step,
        )
        batches = iter(
            DataLoader(
                self.train_set,
                batch_sampler=sampler,
                num_workers=config.num_workers,
                pin_memory=self.device.type == "cuda",
            )
        )
        bar = tqdm(
            total=config.max_steps,
            initial=self.step,
            unit="step",
            dynamic_ncols=True,
            disable=not (process.is_main and config.progress),
            file=sys.stderr,
        )
        self.flow.train()
        self.window.resume()
        while not (self.done or self.early_stop):
            levels, labels = next(batches)
            self.window.add(self.train_step(levels, labels), levels.shape[0])
            self.step += 1
            bar.update(1)
            self._periodic(bar)
        bar.close()
        return self._finish()

    def _final_test(
        self, flow: Flow, dequantizer: torch.nn.Module, label: str
    ) -> Optional[BpdResult]:
        """Test bits/dim with ``final_eval_draws``; an error if it is not finite."""
        if self.test_set is None:
            return None
        result = self.evaluate(self.test_set, self.config.final_eval_draws, flow, dequantizer)
        if not math.isfinite(result.bpd):
            raise TrainingDiverged(
                f"the {label} checkpoint's test bits/dim is {result.bpd}; start a fresh run with "
                f"a lower --lr (this run: {self.config.lr:g})"
            )
        return result

    def _finish(self) -> TrainResult:
        """Checkpoint the final state, evaluate the last and the best checkpoints on the test
        set, and write ``result.json`` and ``bpd.png``."""
        if self.last_checkpoint != checkpoint_path(self.run_dir, self.step):
            self.last_checkpoint = self._save() or self.last_checkpoint
        last = self._final_test(self.eval_flow, self.dequantizer, "last")
        best, best_folder, best_step = last, self.last_checkpoint, self.step
        if self.val_set is not None and self.best.step >= 0:  # else the last is the best
            best_folder, best_step = checkpoint_dir(self.run_dir) / BEST, self.best.step
            loaded = load_run(best_folder, self.device)
            best = self._final_test(loaded.flow, loaded.dequantizer, "best")
        wall = self.elapsed()
        metrics: list[dict[str, Optional[float]]] = []
        if self.process.is_main:

            def entry(step: int, folder: Path, result: Optional[BpdResult]) -> dict[str, Any]:
                scores = (
                    {}
                    if result is None
                    else {"test_bpd": result.bpd, "test_bpd_stderr": result.stderr}
                )
                return {"step": step, "checkpoint": str(folder), **scores}

            summary = {
                "test_bpd": None if best is None else best.bpd,
                "test_bpd_stderr": None if best is None else best.stderr,
                "best": {
                    **entry(best_step, best_folder, best),
                    "val_bpd": self.best.val_bpd if self.best.step >= 0 else None,
                },
                "last": entry(self.step, self.last_checkpoint, last),
                "num_images": None if last is None else last.num_images,
                "draws": self.config.final_eval_draws,
                "steps": self.step,
                "early_stopped": self.early_stop,
                "skipped_steps": self.skipped,
                "wall_time_s": wall,
                "dataset": self.info.name,
                "n_bins": self.info.n_bins,
                "world_size": self.process.world_size,
                "device": str(self.device),
                "torch": torch.__version__,
                "machine": machine_description(self.device),
                "threads": torch.get_num_threads(),
                "checkpoint": str(best_folder),
            }
            write_text_atomically(
                self.run_dir / "result.json", json.dumps(summary, indent=2, allow_nan=False)
            )
            metrics_csv = self.run_dir / "metrics.csv"
            plot_bpd_curves(metrics_csv, self.run_dir / "bpd.png", title=self.config.name)
            metrics = read_metrics(metrics_csv)
        best_bpd = math.nan if best is None else best.bpd
        best_stderr = math.nan if best is None else best.stderr
        return TrainResult(
            self.run_dir,
            self.step,
            best_bpd,
            best_stderr,
            wall,
            self.last_checkpoint,
            metrics,
            best_folder,
            math.nan if last is None else last.bpd,
        )

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
        if self.lock is not None:
            self.lock.release()
        torch.use_deterministic_algorithms(self._deterministic_before)
        torch.set_num_threads(self._threads_before)
        distributed.teardown(self.process)
