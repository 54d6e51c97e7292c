"""What a finished run reports: ``result.json``, the bits/dim plot, and what :func:`train`
returns."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from tqdm import tqdm

from ..machine import machine_description
from ..store.atomic import write_text_atomically
from .evaluate import Bound, tightest
from .plots import plot_bpd_curves
from .run_log import read_metrics


@dataclass
class TrainResult:
    """What :func:`~glowflow.training.trainer.train` returns.

    Attributes:
        run_dir: the run folder.
        steps: optimizer steps taken in total (skipped ones included).
        test_bpd: test bits/dim of the best checkpoint, the tightest bound measured (NaN when
            the dataset has no test split).
        test_bpd_stderr: its standard error over test images.
        wall_time_s: wall time of the run, resumed sessions added up.
        checkpoint: the final checkpoint folder.
        metrics: the rows of ``metrics.csv`` (rank 0; empty on other ranks).
        best_checkpoint: the checkpoint chosen by validation bits/dim (``checkpoints/best``;
            the final one when the run has no validation split).
        last_test_bpd: the final checkpoint's test bits/dim (its tightest bound).
        test_bounds: every bound measured on the best checkpoint, the headline first.
        validations: the validations run, which chose the best checkpoint (0: none did, the
            best is the last).
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
    test_bounds: tuple[Bound, ...]
    validations: int

    def bounds_said(self) -> str:
        """``"importance-weighted bound, K=16; variational bound, 8 draws: 2.1897"``: the
        headline's bound, then each other bound with its figure."""
        if not self.test_bounds:
            return "no test split"
        head, *others = self.test_bounds
        return "; ".join([head.name, *(f"{b.name}: {b.result.bpd:.4f}" for b in others)])

    def chosen_by(self) -> str:
        """How the best checkpoint was chosen, for the final line."""
        if not self.validations:
            return "no validation ran: the last checkpoint"
        return f"chosen by {self.validations} validation{'s' * (self.validations > 1)}"


@dataclass(frozen=True)
class Evaluated:
    """A checkpoint and the bounds measured on its test split (none without one)."""

    step: int
    folder: Path
    bounds: tuple[Bound, ...] = ()

    @property
    def headline(self) -> Optional[Bound]:
        """The tightest bound measured (``None`` without a test split)."""
        return tightest(self.bounds) if self.bounds else None

    def ordered(self) -> tuple[Bound, ...]:
        """The bounds, the headline first."""
        head = self.headline
        return tuple(b for b in self.bounds if b is head) + tuple(
            b for b in self.bounds if b is not head
        )

    def entry(self) -> dict[str, Any]:
        head = self.headline
        scores = (
            {}
            if head is None
            else {
                "test_bpd": head.result.bpd,
                "test_bpd_stderr": head.result.stderr,
                "test_bound": head.name,
                "test_bounds": [bound.to_dict() for bound in self.ordered()],
            }
        )
        return {"step": self.step, "checkpoint": str(self.folder), **scores}


def progress_bar(config: Any, is_main: bool, step: int) -> tqdm:
    """The run's progress bar on stderr, from ``step`` to ``max_steps`` (no total under a
    time budget alone), shown by rank 0 with ``progress``."""
    return tqdm(
        total=config.max_steps or None,
        initial=step,
        unit="step",
        dynamic_ncols=True,
        disable=not (is_main and config.progress),
        file=sys.stderr,
    )


def bar_postfix(row: dict[str, Any]) -> dict[str, str]:
    """The progress bar's figures from a metrics row: train and validation bits/dim, img/s."""
    postfix = {k: f"{row[k]:.3f}" for k in ("train_bpd", "val_bpd") if row.get(k)}
    if row.get("images_per_s"):
        postfix["img/s"] = f"{row['images_per_s']:.0f}"
    return postfix


def run_entries(
    config: Any, state: Any, data: Any, wall: float, early_stopped: bool, world_size: int
) -> dict[str, Any]:
    """``result.json``'s entries about the run itself: from its ``config``, its
    :class:`~.state.TrainingState` ``state`` (steps, skips, the best validation and how many
    validations chose it) and its ``data`` record."""
    chosen = state.best.step >= 0
    return {
        "best_val_bpd": state.best.val_bpd if chosen else None,
        "family": config.family,
        "noise_augment": config.noise_augment,
        "draws": config.final_eval_draws,
        "steps": state.step,
        "validations": state.best.validations,
        "best_chosen_by": (
            f"{state.best.validations} validations"
            if chosen
            else "no validation: the best checkpoint is the last"
        ),
        "early_stopped": early_stopped,
        "skipped_steps": state.skipped,
        "wall_time_s": wall,
        "dataset": data.dataset,
        "n_bins": data.n_bins,
        "world_size": world_size,
    }


def write_report(
    run_dir: Path,
    title: str,
    best: Evaluated,
    last: Evaluated,
    run: dict[str, Any],
    device: torch.device,
) -> list[dict[str, Optional[float]]]:
    """Write ``result.json`` (the best checkpoint's test bits/dim first, the tightest bound
    measured, and the bound it is; every bound of the best and the last checkpoints beside it,
    ``run``'s entries, the machine) and ``bpd.png``; returns the rows of ``metrics.csv``."""
    head = best.headline
    summary = {
        "test_bpd": None if head is None else head.result.bpd,
        "test_bpd_stderr": None if head is None else head.result.stderr,
        "test_bound": None if head is None else head.name,
        "best": {**best.entry(), "val_bpd": run.pop("best_val_bpd", None)},
        "last": last.entry(),
        "num_images": None if head is None else head.result.num_images,
        **run,
        "device": str(device),
        "torch": torch.__version__,
        "machine": machine_description(device),
        "threads": torch.get_num_threads(),
        "checkpoint": str(best.folder),
    }
    write_text_atomically(run_dir / "result.json", json.dumps(summary, indent=2, allow_nan=False))
    metrics_csv = run_dir / "metrics.csv"
    plot_bpd_curves(metrics_csv, run_dir / "bpd.png", title=title)
    return read_metrics(metrics_csv)


def train_result(
    run_dir: Path,
    steps: int,
    wall: float,
    best: Evaluated,
    last: Evaluated,
    metrics: list[dict[str, Optional[float]]],
    validations: int,
) -> TrainResult:
    """The :class:`TrainResult` of a finished run."""
    head, last_head = best.headline, last.headline
    return TrainResult(
        run_dir,
        steps,
        math.nan if head is None else head.result.bpd,
        math.nan if head is None else head.result.stderr,
        wall,
        last.folder,
        metrics,
        best.folder,
        math.nan if last_head is None else last_head.result.bpd,
        best.ordered(),
        validations,
    )
