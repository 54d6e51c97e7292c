"""What a finished run reports: ``result.json``, the bits/dim plot, and what :func:`train`
returns."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from ..machine import machine_description
from ..store.atomic import write_text_atomically
from .evaluate import BpdResult
from .plots import plot_bpd_curves
from .run_log import read_metrics


@dataclass
class TrainResult:
    """What :func:`~glowflow.training.trainer.train` returns.

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


@dataclass(frozen=True)
class Evaluated:
    """A checkpoint and its final test bits/dim (``None`` without a test split)."""

    step: int
    folder: Path
    result: Optional[BpdResult]

    def entry(self) -> dict[str, Any]:
        scores = (
            {}
            if self.result is None
            else {"test_bpd": self.result.bpd, "test_bpd_stderr": self.result.stderr}
        )
        return {"step": self.step, "checkpoint": str(self.folder), **scores}


def write_report(
    run_dir: Path,
    title: str,
    best: Evaluated,
    last: Evaluated,
    run: dict[str, Any],
    device: torch.device,
) -> list[dict[str, Optional[float]]]:
    """Write ``result.json`` (the best checkpoint's test bits/dim first, the last's beside it,
    ``run``'s entries, the machine) and ``bpd.png``; returns the rows of ``metrics.csv``."""
    result = best.result
    summary = {
        "test_bpd": None if result is None else result.bpd,
        "test_bpd_stderr": None if result is None else result.stderr,
        "best": {**best.entry(), "val_bpd": run.pop("best_val_bpd", None)},
        "last": last.entry(),
        "num_images": None if last.result is None else last.result.num_images,
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
) -> TrainResult:
    """The :class:`TrainResult` of a finished run."""
    return TrainResult(
        run_dir,
        steps,
        math.nan if best.result is None else best.result.bpd,
        math.nan if best.result is None else best.result.stderr,
        wall,
        last.folder,
        metrics,
        best.folder,
        math.nan if last.result is None else last.result.bpd,
    )
