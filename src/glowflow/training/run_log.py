"""The run folder's metrics: ``metrics.csv`` (one row per logged step) and optional TensorBoard.

``metrics.csv`` survives a kill at any moment:

* starting or resuming a run never rewrites it in place: the kept rows go to a temporary file in
  the same folder, which is fsynced and then renamed over it (``os.replace``, atomic), so the
  file holds either its old or its new content;
* rows are then appended, each flushed and fsynced, so a kill can only tear the last row;
* a torn last row (no newline, or the wrong number of fields) is ignored when reading and
  dropped on the next resume.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from ..errors import ConfigError, ModelFileError
from ..store.atomic import write_text_atomically, writing

COLUMNS = (
    "step",  # optimizer steps taken (skipped steps included)
    "train_bpd",  # mean training bits/dim over the steps since the previous row
    "val_bpd",  # validation bits/dim (mean over images), on validation rows only
    "val_bpd_stderr",  # its standard error over images
    "test_bpd",  # test bits/dim, on rows asked for with test_every only
    "test_bpd_stderr",  # its standard error over images
    "lr",  # learning rate of the last step
    "grad_norm",  # mean gradient norm (before clipping) since the previous row
    "images_per_s",  # training throughput over all processes since the previous row
    "skipped_steps",  # non-finite steps skipped so far (cumulative)
    "elapsed_s",  # training wall time so far, across resumes
)


def _read_rows(path: Path) -> list[dict[str, str]]:
    """The complete rows of a ``metrics.csv``, as strings; a torn last row is left out.

    An empty file (a kill by an older glowflow) has no rows; a header other than
    :data:`COLUMNS` raises ``RuntimeError`` naming the file.
    """
    with open(path, newline="") as handle:
        text = handle.read()
    if not text:
        return []
    lines = text.splitlines(keepends=True)
    if not lines[-1].endswith("\n"):
        lines.pop()  # the row a kill interrupted
    rows = list(csv.reader(lines))
    if not rows or tuple(rows[0]) != COLUMNS:
        raise ModelFileError(
            f"{path} is not a glowflow metrics file (columns {rows[:1]}, expected {list(COLUMNS)})"
        )
    return [dict(zip(COLUMNS, row)) for row in rows[1:] if len(row) == len(COLUMNS)]


def read_metrics(path: Path) -> list[dict[str, Optional[float]]]:
    """Rows of a ``metrics.csv`` as dicts of floats (``None`` for blanks); a torn last row
    is left out."""
    return [
        {key: float(value) if value else None for key, value in row.items()}
        for row in _read_rows(path)
    ]


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def _csv_text(rows: list[dict[str, str]], header: bool = False) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS)
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


class RunLog:
    """Appends rows to ``RUN_DIR/metrics.csv`` and, if asked, to TensorBoard (``RUN_DIR/tb``).

    A fresh run (``resume_step=None``) starts the file with only its header. On resume from
    step ``s`` the rows after ``s`` (written after the checkpoint by the interrupted run) and a
    torn last row are dropped, so the file reads as one uninterrupted run. Each written row is
    on disk (fsynced) when :meth:`write` returns.
    """

    def __init__(self, run_dir: Path, resume_step: Optional[int] = None, tensorboard: bool = False):
        self.path = run_dir / "metrics.csv"
        kept: list[dict[str, str]] = []
        if resume_step is not None and self.path.is_file():
            kept = [row for row in _read_rows(self.path) if int(row["step"]) <= resume_step]
        write_text_atomically(self.path, _csv_text(kept, header=True))
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tb"))

    def write(self, **row: Any) -> None:
        """Append one row (missing columns stay blank); it is fsynced before this returns."""
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ConfigError(f"unknown metrics columns {sorted(unknown)}")
        with writing(self.path), open(self.path, "a", newline="") as handle:
            handle.write(_csv_text([{k: _format(v) for k, v in row.items()}]))
            handle.flush()
            os.fsync(handle.fileno())
        if self.writer is not None:
            for key, value in row.items():
                if key != "step" and value is not None:
                    self.writer.add_scalar(key, value, row["step"])
            self.writer.flush()

    def images(self, paths: Sequence[Path], step: int) -> None:
        """Show the sample grids at ``paths`` (``...step-N_tT.png``) in TensorBoard, tagged
        by temperature (``samples/T=0.7``); nothing without TensorBoard."""
        if self.writer is None:
            return
        import numpy as np
        from PIL import Image

        for path in paths:
            with Image.open(path) as picture:
                pixels = np.asarray(picture.convert("RGB"))
            temperature = path.stem.rsplit("_t", 1)[-1]
            self.writer.add_image(f"samples/T={temperature}", pixels, step, dataformats="HWC")
        self.writer.flush()

    def finish(self, config: Any, results: Mapping[str, Optional[float]]) -> None:
        """Record the run's hyper-parameters (the :class:`~.config.TrainConfig` ``config``,
        flat: run and model fields, lists as text) beside its final ``results`` (test bits/dim,
        best validation bits/dim) in TensorBoard's HParams view (``tb/hparams``); nothing
        without TensorBoard."""
        if self.writer is None:
            return
        values = config.to_dict()
        settings = {**values, **values.pop("model")}
        shown = {
            key: value if isinstance(value, (bool, int, float, str)) else str(value)
            for key, value in settings.items()
        }
        numbers = {f"hparam/{k}": v for k, v in results.items() if v is not None}
        self.writer.add_hparams(shown, numbers, run_name="hparams")
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
