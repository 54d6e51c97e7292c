"""A run's best checkpoint as a model folder of its own, copied rather than rebuilt.

A checkpoint already is a model folder (:mod:`glowflow.store`), so exporting copies its
weights file (the EMA's when chosen), its learned dequantizer's weights and its record, adds
where the weights came from and the test bits/dim measured on that very checkpoint, and writes
the card anew. Nothing is rebuilt, so an exported model's bits/dim, a learned dequantizer's
bound included, are its run's.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any, Optional, Union

from ..errors import ModelFileError
from ..store.loader import BEST, EMA_FILE, checkpoint_dir, checkpoint_folder, load_model
from ..store.record import DEQUANTIZER_FILE, WEIGHTS_FILE, is_model_folder, read_record
from ..store.writer import replace_folder, save_model, write_record
from .checkpoint import read_run_config
from .config import TrainConfig, field_types, resolve_config

PathLike = Union[str, Path]


def best_checkpoint(run_dir: PathLike) -> Path:
    """The checkpoint :func:`export_run` takes: ``checkpoints/best`` when the run has one, else
    its newest; ``MissingFileError`` when it has none."""
    best = checkpoint_dir(run_dir) / BEST
    return best if best.is_dir() else checkpoint_folder(run_dir)


def command_of(config: TrainConfig) -> str:
    """A ``glowflow train`` command line that trains ``config``: its family and every setting
    that differs from what ``glowflow train --family FAMILY`` trains (the default preset and
    recipe; where it runs left out)."""
    defaults = resolve_config(overrides={"family": config.family})
    parts = ["glowflow train", f"--family {config.family}"]
    for name in field_types(config.family):
        if name in ("run_dir", "device", "threads", "progress", "family", "data_root"):
            continue
        value, default = config.value(name), defaults.value(name)
        if value == default:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{name.replace('_', '-')}")
        elif isinstance(value, tuple):
            parts.append(f"{flag} {' '.join(map(str, value))}")
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def _result_metrics(run_dir: Path, checkpoint: Path, step: int) -> dict[str, Any]:
    """The test bits/dim of ``result.json`` when it was measured on ``checkpoint``."""
    path = run_dir / "result.json"
    if not path.is_file():
        return {}
    result = json.loads(path.read_text())
    entry = result.get("best") if checkpoint.name == BEST else result.get("last")
    if not isinstance(entry, dict) or Path(str(entry.get("checkpoint"))).name != checkpoint.name:
        return {}
    if entry.get("test_bpd") is None:
        return {}
    others = (entry.get("test_bounds") or [])[1:]
    return {
        "test_bpd": entry["test_bpd"],
        "test_bpd_stderr": entry.get("test_bpd_stderr"),
        "bound": entry.get("test_bound") or "the run's dequantization bound",
        **(
            {
                "other_bounds": "; ".join(
                    f"{b['bound']}, {b['draws']} draws: {b['bpd']:.4f}" for b in others
                )
            }
            if others
            else {}
        ),
        "measured": f"mean over {result.get('num_images')} test images, eval mode, at step "
        f"{step}, from the run's result.json; bpd = (-log p(x) + D log n_bins) / (D log 2)",
        "wall_time_s": round(float(result.get("wall_time_s", 0.0)), 1),
        "machine": f"{result.get('machine')}, torch {result.get('torch')}",
    }


def export_run(
    run_dir: PathLike,
    out: PathLike,
    train_command: Optional[str] = None,
    name: Optional[str] = None,
    ema: Optional[bool] = None,
) -> Path:
    """Write a run's best checkpoint (else its newest) as a model folder at ``out``.

    The record keeps the run's settings and step, the command that trains it
    (``train_command``, default :func:`command_of` the run's settings) and, when the run's
    ``result.json`` was measured on this very
    checkpoint, its test bits/dim at that checkpoint's step. ``ema`` picks the EMA weights
    (``None``: when the checkpoint has them).
    """
    run_dir = Path(run_dir)
    checkpoint = best_checkpoint(run_dir)
    config = read_run_config(checkpoint)
    use_ema = (checkpoint / EMA_FILE).is_file() if ema is None else ema
    command = train_command or command_of(config)
    notes = []
    if checkpoint.name != BEST:
        notes.append(
            f"the run has no checkpoints/best (best-checkpoint selection), so this is its "
            f"newest checkpoint, {checkpoint.name}"
        )
    if not is_model_folder(checkpoint):  # written before checkpoints were model folders
        loaded = load_model(checkpoint, ema=use_ema)
        provenance = {**loaded.record["provenance"], "command": command}
        step = int(loaded.step or 0)
        provenance.update(checkpoint=checkpoint.name, ema=use_ema, notes=notes)
        metrics = _result_metrics(run_dir, checkpoint, step)
        data = dataclasses.replace(
            loaded.data,
            image_size=config.image_size,
            n_bits=config.n_bits,
            val_size=config.val_size,
            data_root=config.data_root,
        )
        return save_model(loaded.flow, out, data, loaded.dequantizer, provenance, metrics, name)
    record = read_record(checkpoint)
    step = int(record["provenance"]["step"])
    source = checkpoint / (EMA_FILE if use_ema else WEIGHTS_FILE)
    if not source.is_file():
        raise ModelFileError(f"{source} is missing: {checkpoint} has no such weights")
    record.update(
        name=name or Path(out).resolve().name,
        metrics=_result_metrics(run_dir, checkpoint, step),
    )
    record["provenance"].update(
        kind="glowflow run",
        command=command,
        checkpoint=f"{checkpoint.name} (step {step})",
        ema=use_ema,
        notes=notes,
    )

    def fill(folder: Path) -> None:
        shutil.copyfile(source, folder / WEIGHTS_FILE)
        if (checkpoint / DEQUANTIZER_FILE).is_file():
            shutil.copyfile(checkpoint / DEQUANTIZER_FILE, folder / DEQUANTIZER_FILE)
        write_record(folder, record)

    return replace_folder(Path(out), fill)
