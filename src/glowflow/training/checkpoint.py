"""Checkpoints: a model folder per step plus the training state, written atomically.

A checkpoint ``RUN_DIR/checkpoints/step-00001000/`` is a model folder (:mod:`glowflow.store`:
``config.json`` with the family, the complete model config, the data, the dequantizer and a
provenance holding the run's :class:`TrainConfig` and step; the signed ``model.safetensors``;
a learned dequantizer's ``dequantizer.safetensors``; the card), plus what only training needs:

* ``ema.safetensors``: the EMA weights, when the run keeps them (signed like the model's);
* ``state.pt``: optimizer, learning-rate schedule, step, RNG and NaN-guard states.

The folder is filled under a temporary name and renamed into place by the store's one writer
(:func:`glowflow.store.writer.replace_folder`), so a killed run leaves either a complete
checkpoint or none (plus a ``.tmp-*``/``.old-*`` folder, which :func:`remove_stale_temporaries`
deletes). Guarantees:

* a failed write (full disk, read-only folder, ...) raises one error naming the checkpoint and
  the cause, leaves no temporary folder and the previous checkpoints intact;
* non-finite weights or optimizer state are never written (:class:`NonFiniteStateError`);
* every weights file stores the sha256 of its tensors, checked when read.

Unreadable, truncated, corrupt or foreign files raise :class:`~glowflow.errors.ModelFileError`
naming the file. Checkpoints from before model folders (their record in the weights' metadata)
still load and resume.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch

from ..errors import ConfigError, MissingFileError, ModelFileError
from ..flow import Flow
from ..store.atomic import os_error_text
from ..store.data import DataSpec
from ..store.loader import (
    EMA_FILE,
    LoadedModel,
    checkpoint_dir,
    checkpoint_folder,
    list_checkpoints,
    load_model,
    load_weights,
    read_weights,
)
from ..store.record import (
    CONFIG_FILE,
    DEQUANTIZER_FILE,
    WEIGHTS_FILE,
    is_model_folder,
    make_record,
    read_record,
)
from ..store.writer import replace_folder, signed_bytes, weights_of, write_model_files
from ..validation import first_non_finite
from .config import TrainConfig
from .model import model_config

STATE_FORMAT = "glowflow.checkpoint/1"
"""The ``format`` entry of ``state.pt`` (the training state)."""
STATE_FILE = "state.pt"
# Temporaries a killed write leaves, with the writer's pid: checkpoint folders, metrics.csv.
_CHECKPOINT_TEMPORARY = re.compile(r"^\.(?:tmp|old)-(?:step-\d+|best)-(\d+)$")
_RUN_TEMPORARY = re.compile(r"^\.[\w.]+\.tmp-(\d+)$")  # write_text_atomically's leftovers
# What to do about a failed write, by errno.
_WRITE_HINTS = {
    errno.ENOSPC: "free space",
    errno.EDQUOT: "free space",
    errno.EACCES: "make the run folder writable",
    errno.EPERM: "make the run folder writable",
    errno.EROFS: "make the run folder writable",
}

PathLike = Union[str, Path]


def checkpoint_path(run_dir: PathLike, step: int) -> Path:
    """The folder of checkpoint ``step`` of a run (whether or not it exists)."""
    return checkpoint_dir(run_dir) / f"step-{step:08d}"


class NonFiniteStateError(RuntimeError):
    """:func:`save_checkpoint` refused to write a NaN or infinite weight or optimizer state."""


def _torch_bytes(value: Any) -> bytes:
    """``torch.save`` into memory, so that writing the file raises plain ``OSError``s (torch's
    own writer reports a full disk as "unexpected pos")."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _write_error(final: Path, error: OSError) -> ModelFileError:
    hint = _WRITE_HINTS.get(error.errno, "fix this")
    return ModelFileError(
        f"cannot write checkpoint {final}: {os_error_text(error)}; {hint} and "
        f"resume with --resume auto"
    )


def _is_leftover(pid: int) -> bool:
    """Whether a temporary named with ``pid`` is no longer being written: ``pid`` is this
    process (which is not saving when it cleans up) or no live process. Off POSIX, never
    (``os.kill`` there would end the process)."""
    if os.name != "posix":
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False


def remove_stale_temporaries(run_dir: PathLike) -> list[Path]:
    """Delete what killed writes left in a run folder; returns the deleted paths.

    Those are ``checkpoints/.tmp-step-*-PID`` and ``checkpoints/.old-step-*-PID`` folders and
    ``.metrics.csv.tmp-PID`` files whose PID is this process or no live process (see
    :func:`_is_leftover`); a temporary of another live process is kept, so this is safe without
    the :class:`~glowflow.training.run_lock.RunLock` (a pid reused by an unrelated process only
    delays the cleanup). Call it at run start, after taking the run lock, not while this process
    is inside :func:`save_checkpoint`.
    """
    run_dir = Path(run_dir)
    candidates = [(checkpoint_dir(run_dir), _CHECKPOINT_TEMPORARY), (run_dir, _RUN_TEMPORARY)]
    removed = []
    for folder, pattern in candidates:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            match = pattern.match(path.name)
            if match and _is_leftover(int(match.group(1))):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path)
    return removed


def save_checkpoint(
    run_dir: PathLike,
    step: int,
    flow: Flow,
    config: TrainConfig,
    data: DataSpec,
    state: dict[str, Any],
    ema_flow: Optional[Flow] = None,
    name: Optional[str] = None,
    dequantizer: Optional[torch.nn.Module] = None,
) -> Path:
    """Write checkpoint ``step`` of a run atomically; returns its folder.

    ``state`` is the training state for ``state.pt`` (optimizer, schedule, RNG, ...); ``step``
    is added to it. The folder is ``checkpoints/step-<step>``, or ``checkpoints/<name>`` (the
    best checkpoint: :data:`BEST`); an existing one of the same name is replaced.

    Raises :class:`NonFiniteStateError` (writing nothing) when a model or EMA weight or a
    floating tensor of ``state`` is NaN or infinite, and ``ModelFileError`` naming the
    checkpoint and the cause when writing fails; either way no temporary folder is left and the
    existing checkpoints are untouched.
    """
    final = checkpoint_dir(run_dir) / name if name else checkpoint_path(run_dir, step)
    weights = weights_of(flow)
    ema = weights_of(ema_flow) if ema_flow is not None else None
    learned = weights_of(dequantizer) if dequantizer is not None else {}
    state = {"format": STATE_FORMAT, "step": step, **state}
    files = {WEIGHTS_FILE: weights, EMA_FILE: ema, DEQUANTIZER_FILE: learned}
    bad = first_non_finite(files, "")
    bad = bad or first_non_finite(state, STATE_FILE)
    if bad is not None:
        raise NonFiniteStateError(
            f"refusing to write checkpoint {final}: {bad} is "
            f"not finite (NaN or inf); the previous checkpoints are kept"
        )
    provenance = {
        "kind": "glowflow run checkpoint",
        "run": config.name,
        "step": step,
        "ema": False,
        "train_config": config.to_dict(),
    }
    if config.init_from:
        provenance["weights_started_from"] = config.init_from
    record = make_record(
        model_config(config, data),
        data,
        sum(p.numel() for p in flow.parameters()),
        getattr(dequantizer, "settings", None),
        provenance,
        name=f"{config.name} step {step}",
        noise_augment=config.noise_augment,
    )

    def fill(folder: Path) -> None:
        write_model_files(folder, record, weights, learned)
        if ema is not None:
            (folder / EMA_FILE).write_bytes(signed_bytes(ema))
        (folder / STATE_FILE).write_bytes(_torch_bytes(state))

    try:
        return replace_folder(final, fill)
    except OSError as error:
        raise _write_error(final, error) from None


def prune_checkpoints(run_dir: PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for path in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(path)


def read_state(folder: Path) -> dict[str, Any]:
    """The training state saved in ``folder/state.pt``; clear errors when unreadable."""
    path = folder / STATE_FILE
    if not path.is_file():
        raise MissingFileError(f"checkpoint file {path} is missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, pickle errors, ...
        raise ModelFileError(
            f"{path} is not a readable training state (truncated?): {error}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ModelFileError(f"{path} is not a glowflow training state")
    return state


def read_run_record(folder: Path) -> tuple[dict[str, Any], int]:
    """``(the run's settings as JSON, step)`` of a checkpoint folder: from its ``config.json``
    provenance, or the weights' metadata of a checkpoint from before model folders."""
    if is_model_folder(folder):
        provenance = read_record(folder)["provenance"]
        settings, step = provenance.get("train_config"), provenance.get("step")
        if not isinstance(settings, dict) or not isinstance(step, int):
            raise ModelFileError(
                f"{folder / CONFIG_FILE} lacks the run's 'train_config' and 'step' in its "
                f"provenance: it is a model folder, not a checkpoint of a glowflow run"
            )
        return settings, step
    path = folder / WEIGHTS_FILE
    _, metadata = read_weights(path, "checkpoint")
    for key in ("step", "config"):
        if key not in metadata:
            raise ModelFileError(
                f"{path} lacks the checkpoint metadata entry {key!r} (damaged or not written "
                f"by glowflow train)"
            )
    try:
        return json.loads(metadata["config"]), int(metadata["step"])
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: damaged checkpoint metadata 'config' ({error})") from None


def read_run_config(folder: Path) -> TrainConfig:
    """The :class:`TrainConfig` a checkpoint folder was written with (what a resume continues)."""
    settings, _ = read_run_record(folder)
    where = str(folder / (CONFIG_FILE if is_model_folder(folder) else WEIGHTS_FILE))
    return TrainConfig.from_dict(settings, where=where)


def load_run(
    path: PathLike, device: Union[str, torch.device] = "cpu", ema: Optional[bool] = None
) -> tuple[LoadedModel, TrainConfig]:
    """A run's checkpoint (a run folder gives its best, else its newest) as the store's
    :class:`~glowflow.store.loader.LoadedModel`, with the run's :class:`TrainConfig`."""
    folder = checkpoint_folder(path)
    return load_model(folder, device, ema), read_run_config(folder)


def start_checkpoint(
    run_dir: Path, resume: Optional[str], say: Callable[[str], None]
) -> Optional[Path]:
    """Where a run starts: ``None`` for a fresh run (``resume=None``; a ``ConfigError`` when
    the run folder already holds checkpoints, never a silent fresh start over them), the
    newest checkpoint (``"auto"``; a fresh run when there is none) or the given one."""
    existing = list_checkpoints(run_dir)
    if resume is None:
        if existing:
            raise ConfigError(
                f"run folder {run_dir} already holds checkpoints (newest: "
                f"{existing[-1].name}); continue it with --resume auto or pick another --run-dir"
            )
        return None
    if resume == "auto":
        if not existing:
            say(f"no checkpoint in {run_dir}; starting a fresh run")
            return None
        return existing[-1]
    return checkpoint_folder(resume)


def load_checkpoint_weights(
    folder: Path,
    flow: Flow,
    dequantizer: torch.nn.Module,
    ema_flow: Optional[Flow] = None,
) -> None:
    """Load a checkpoint's weights into a run's modules: the flow's, a learned dequantizer's
    and the EMA's (each file checked against its sha256)."""
    files = [(flow, WEIGHTS_FILE)]
    if dequantizer.state_dict():
        files.append((dequantizer, DEQUANTIZER_FILE))
    if ema_flow is not None:
        files.append((ema_flow, EMA_FILE))
    for module, name in files:
        load_weights(module, folder / name, read_weights(folder / name)[0])


def remove_if_unused(run_dir: Path) -> None:
    """Remove a run folder that a failed start left holding nothing but its ``.lock`` (the
    lock released first), so a mistyped command leaves no trace."""
    run_dir = Path(run_dir)
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {".lock"}:
        (run_dir / ".lock").unlink(missing_ok=True)
        run_dir.rmdir()
