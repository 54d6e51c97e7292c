"""The run folder's metrics: ``metrics.csv`` (one row per logged step) and optional TensorBoard."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Optional

COLUMNS = (
    "step",            # optimizer steps taken (skipped steps included)
    "train_bpd",       # mean training bits/dim over the steps since the previous row
    "test_bpd",        # test bits/dim (mean over images), on evaluation rows only
    "test_bpd_stderr", # its standard error over images
    "lr",              # learning rate of the last step
    "grad_norm",       # mean gradient norm (before clipping) since the previous row
    "images_per_s",    # training throughput over all processes since the previous row
    "skipped_steps",   # non-finite steps skipped so far (cumulative)
    "elapsed_s",       # training wall time so far, across resumes
)


def read_metrics(path: Path) -> list[dict[str, Optional[float]]]:
    """Rows of a ``metrics.csv`` as dicts of floats (``None`` for blanks)."""
    with open(path, newline="") as handle:
        return [
            {key: (float(value) if value not in ("", None) else None) for key, value in row.items()}
            for row in csv.DictReader(handle)
        ]


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


class RunLog:
    """Appends rows to ``RUN_DIR/metrics.csv`` and, if asked, to TensorBoard (``RUN_DIR/tb``).

    On resume from step ``s`` the rows after ``s`` (written after the checkpoint by the
    interrupted run) are dropped, so the file reads as one uninterrupted run.
    """

    def __init__(self, run_dir: Path, resume_step: Optional[int] = None, tensorboard: bool = False):
        self.path = run_dir / "metrics.csv"
        kept: list[dict[str, str]] = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="") as handle:
                kept = [row for row in csv.DictReader(handle) if int(row["step"]) <= resume_step]
        with open(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, COLUMNS)
            writer.writeheader()
            writer.writerows(kept)
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tb"))

    def write(self, **row: Any) -> None:
        """Append one row (missing columns stay blank)."""
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown metrics columns {sorted(unknown)}")
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, COLUMNS).writerow({k: _format(v) for k, v in row.items()})
        if self.writer is not None:
            for key, value in row.items():
                if key != "step" and value is not None:
                    self.writer.add_scalar(key, value, row["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
