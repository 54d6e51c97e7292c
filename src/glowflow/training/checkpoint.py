"""Checkpoints: one folder per step, written atomically, and the loader other commands use.

Layout of ``RUN_DIR/checkpoints/step-00001000/``:

* ``model.safetensors``: the flow's ``state_dict`` (parameters and persistent buffers, ActNorm's
  ``initialized`` flag included, so a loaded model never re-initializes); its metadata holds
  ``format``, ``step``, the :class:`TrainConfig`, the :class:`DatasetInfo` and the model's
  complete :class:`~glowflow.GlowConfig` (``glow``, which alone rebuilds the model) as JSON;
* ``ema.safetensors``: the EMA weights, when the run keeps them;
* ``state.pt``: optimizer, learning-rate schedule, step, RNG and NaN-guard states.

A folder is filled under a temporary name and renamed into place (``os.replace``), so a killed
run leaves either a complete checkpoint or none (plus a ``.tmp-*``/``.old-*`` folder, which
:func:`remove_stale_temporaries` deletes). Guarantees:

* a failed write (full disk, read-only folder, ...) raises one ``RuntimeError`` naming the
  checkpoint and the cause, leaves no temporary folder and the previous checkpoints intact;
* non-finite weights or optimizer state are never written (:class:`NonFiniteStateError`);
* each ``.safetensors`` file stores the sha256 of its tensors (``sha256`` metadata), checked by
  :func:`read_weights`; files from before that only load when all their floats are finite.

Unreadable, truncated, corrupt or foreign files raise ``RuntimeError`` naming the file.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import torch
from safetensors.torch import save as safetensors_bytes

from ..bijectors.actnorm import ActNorm
from ..config import GlowConfig
from ..flow import Flow
from ..glow import Glow
from ..signed_weights import read_signed_weights, tensors_sha256
from .atomic import fsync_path, os_error_text
from .config import TrainConfig
from .model import DatasetInfo, build_dequantizer, model_config

FORMAT = "glowflow.checkpoint/1"
BEST = "best"
"""The folder name of a run's best checkpoint (lowest validation bits/dim), beside the steps'."""
MODEL_FILE, EMA_FILE, STATE_FILE = "model.safetensors", "ema.safetensors", "state.pt"
DEQUANTIZER_FILE = "dequantizer.safetensors"  # a learned q(u | x), when the run has one
_STEP_DIR = re.compile(r"^step-(\d+)$")
# Metadata every glowflow weights file must hold (checked by read_weights).
REQUIRED_METADATA = ("step", "config", "dataset")
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


def checkpoint_dir(run_dir: PathLike) -> Path:
    """Where a run keeps its checkpoints."""
    return Path(run_dir) / "checkpoints"


def checkpoint_path(run_dir: PathLike, step: int) -> Path:
    """The folder of checkpoint ``step`` of a run (whether or not it exists)."""
    return checkpoint_dir(run_dir) / f"step-{step:08d}"


class NonFiniteStateError(RuntimeError):
    """:func:`save_checkpoint` refused to write a NaN or infinite weight or optimizer state."""


def _fsync_tree(folder: Path) -> None:
    for path in [*folder.iterdir(), folder]:
        fsync_path(path)


def _tensors_in(value: Any, where: str) -> Iterator[tuple[str, torch.Tensor]]:
    """``(dotted path, tensor)`` for every tensor in nested dicts, lists and tuples."""
    if isinstance(value, torch.Tensor):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors_in(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _tensors_in(item, f"{where}.{index}" if where else str(index))


def first_non_finite(value: Any, where: str) -> Optional[str]:
    """The dotted path of the first floating tensor in ``value`` holding a NaN or inf."""
    for path, tensor in _tensors_in(value, where):
        if (tensor.is_floating_point() or tensor.is_complex()) and not torch.isfinite(tensor).all():
            return path
    return None


def _torch_bytes(value: Any) -> bytes:
    """``torch.save`` into memory, so that writing the file raises plain ``OSError``s (torch's
    own writer reports a full disk as "unexpected pos")."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _write_error(final: Path, error: OSError) -> RuntimeError:
    hint = _WRITE_HINTS.get(error.errno, "fix this")
    return RuntimeError(
        f"cannot write checkpoint {final}: {os_error_text(error)}; {hint} and "
        f"resume with --resume auto"
    )


def _move_into_place(temporary: Path, final: Path) -> None:
    """Rename ``temporary`` to ``final``, replacing an existing ``final`` (restored if the
    rename fails), and make the rename durable."""
    if final.exists():
        old = final.parent / f".old-{final.name}-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        try:
            os.replace(temporary, final)
        except OSError:
            os.replace(old, final)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(temporary, final)
    fsync_path(final.parent)


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


def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def save_checkpoint(
    run_dir: PathLike,
    step: int,
    flow: Flow,
    config: TrainConfig,
    info: DatasetInfo,
    state: dict[str, Any],
    ema_flow: Optional[Flow] = None,
    name: Optional[str] = None,
    dequantizer: Optional[torch.nn.Module] = None,
) -> Path:
    """Write checkpoint ``step`` of a run atomically; returns its folder.

    ``state`` is the training state for ``state.pt`` (optimizer, schedule, RNG, ...); ``step``
    is added to it. The folder is ``checkpoints/step-<step>``, or ``checkpoints/<name>`` (the
    best checkpoint: :data:`BEST`); an existing one of the same name is replaced. A
    ``dequantizer`` with weights (a learned ``q(u | x)``) goes to :data:`DEQUANTIZER_FILE`.

    Raises :class:`NonFiniteStateError` (writing nothing) when a model or EMA weight or a
    floating tensor of ``state`` is NaN or infinite, and ``RuntimeError`` naming the checkpoint
    and the cause when writing fails; either way no temporary folder is left and the existing
    checkpoints are untouched.
    """
    final = checkpoint_dir(run_dir) / name if name else checkpoint_path(run_dir, step)
    root = final.parent
    files = {MODEL_FILE: _weights(flow)}
    if ema_flow is not None:
        files[EMA_FILE] = _weights(ema_flow)
    if dequantizer is not None and dequantizer.state_dict():
        files[DEQUANTIZER_FILE] = _weights(dequantizer)
    state = {"format": FORMAT, "step": step, **state}
    bad = first_non_finite(files, "") or first_non_finite(state, STATE_FILE)
    if bad is not None:
        raise NonFiniteStateError(
            f"refusing to write checkpoint {final}: {bad} is "
            f"not finite (NaN or inf); the previous checkpoints are kept"
        )
    metadata = {
        "format": FORMAT,
        "step": str(step),
        "config": json.dumps(config.to_dict()),
        "dataset": json.dumps(info.to_dict()),
        "glow": json.dumps(model_config(config, info).to_dict()),
    }
    temporary = root / f".tmp-{final.name}-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
        for name, tensors in files.items():
            signed = {**metadata, "sha256": tensors_sha256(tensors)}
            (temporary / name).write_bytes(safetensors_bytes(tensors, signed))
        (temporary / STATE_FILE).write_bytes(_torch_bytes(state))
        _fsync_tree(temporary)
        _move_into_place(temporary, final)
    except BaseException as error:
        shutil.rmtree(temporary, ignore_errors=True)
        if isinstance(error, OSError):
            raise _write_error(final, error) from None
        raise
    return final


def list_checkpoints(run_dir: PathLike) -> list[Path]:
    """The run's complete-named checkpoint folders, oldest step first."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name))]
    return [path for _, path in sorted(found)]


def prune_checkpoints(run_dir: PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for path in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(path)


def resolve_checkpoint(path: PathLike) -> Path:
    """A checkpoint folder from a run folder (its best checkpoint, chosen by validation
    bits/dim, else its newest), a checkpoint folder, or a file inside one.
    ``FileNotFoundError`` when there is none."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_file():
        path = path.parent
    if (path / MODEL_FILE).exists() or (path / STATE_FILE).exists():
        return path
    best = checkpoint_dir(path) / BEST
    if (best / MODEL_FILE).exists():
        return best
    found = list_checkpoints(path)
    if not found:
        raise FileNotFoundError(f"{path} is neither a checkpoint nor a run folder with checkpoints")
    return found[-1]


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(state_dict, metadata)`` of a glowflow ``.safetensors`` file.

    Guarantees the tensors match the stored ``sha256`` (or, in files saved before it, are all
    finite; see :func:`~glowflow.signed_weights.read_signed_weights`) and the metadata holds
    :data:`REQUIRED_METADATA`; otherwise ``RuntimeError`` naming the file
    (``FileNotFoundError`` when it is missing).
    """
    tensors, metadata = read_signed_weights(
        path, FORMAT, "checkpoint", unsigned_ok=True, remedy="use an earlier checkpoint"
    )
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise RuntimeError(
            f"{path} lacks the checkpoint metadata entry {missing[0]!r} "
            f"(damaged or not written by glowflow train)"
        )
    return tensors, metadata


def read_state(folder: Path) -> dict[str, Any]:
    """The training state saved in ``folder/state.pt``; clear errors when unreadable."""
    path = folder / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} is missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, pickle errors, ...
        raise RuntimeError(
            f"{path} is not a readable training state (truncated?): {error}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RuntimeError(f"{path} is not a glowflow training state")
    return state


def read_run_config(folder: Path) -> TrainConfig:
    """The :class:`TrainConfig` a checkpoint folder was written with (what a resume continues)."""
    path = folder / MODEL_FILE
    _, metadata = read_weights(path)
    try:
        return TrainConfig.from_dict(json.loads(metadata["config"]), where=str(path))
    except (TypeError, json.JSONDecodeError) as error:
        raise RuntimeError(f"{path}: damaged checkpoint metadata 'config' ({error})") from None


def check_initialized(module: torch.nn.Module, path: Path) -> None:
    """Refuse a model whose ActNorm layers were never initialized: using it would initialize
    them from whatever data it sees first (the test set, in ``eval``)."""
    names = [
        name
        for name, layer in module.named_modules()
        if isinstance(layer, ActNorm) and not layer.is_initialized
    ]
    if names:
        raise RuntimeError(
            f"{path} holds {len(names)} ActNorm layers that were never "
            f"initialized (first: {names[0]}); it was not written by a training "
            f"run, or is damaged"
        )


def load_weights(module: torch.nn.Module, path: Path, state_dict: dict[str, torch.Tensor]) -> None:
    """``module.load_state_dict(state_dict)`` (strict), re-raised naming ``path``; then
    :func:`check_initialized`."""
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as error:
        raise RuntimeError(f"{path} does not fit this model: {error}") from None
    check_initialized(module, path)


@dataclass
class LoadedRun:
    """A trained flow and what it was trained on, as returned by :func:`load_run`.

    Attributes:
        flow: the model, in eval mode, on the requested device.
        config: the run's :class:`TrainConfig`.
        info: dataset name, shape ``(C, H, W)``, ``n_bins`` and ``num_classes``.
        step: the training step the checkpoint was written at.
        checkpoint: the checkpoint folder.
        run_dir: the run folder (the checkpoint folder's grandparent).
        ema: whether ``flow`` holds the EMA weights.
        dequantizer: the run's dequantizer (uniform, or the learned ``q(u | x)`` with its
            weights), on the device, in eval mode.
    """

    flow: Flow
    config: TrainConfig
    info: DatasetInfo
    step: int
    checkpoint: Path
    run_dir: Path
    ema: bool
    dequantizer: torch.nn.Module

    @property
    def conditional(self) -> bool:
        """Whether the flow is class-conditional (needs ``y``)."""
        return self.config.conditional


def load_run(
    path: PathLike, device: Union[str, torch.device] = "cpu", ema: Optional[bool] = None
) -> LoadedRun:
    """Load a trained flow from a run folder (its best checkpoint, else its newest) or a checkpoint.

    Args:
        path: run folder, checkpoint folder, or a file inside a checkpoint folder.
        device: where to put the flow.
        ema: use the EMA weights; ``None`` uses them when the checkpoint has them.

    The ActNorm layers come back initialized (persistent ``initialized`` buffer), so the
    loaded flow never re-initializes from data.
    """
    folder = resolve_checkpoint(path)
    use_ema = (folder / EMA_FILE).is_file() if ema is None else ema
    weights_path = folder / (EMA_FILE if use_ema else MODEL_FILE)
    state_dict, metadata = read_weights(weights_path)
    try:
        config = TrainConfig.from_dict(json.loads(metadata["config"]), where=str(weights_path))
        info = DatasetInfo.from_dict(json.loads(metadata["dataset"]))
        step = int(metadata["step"])
        # The complete model description; checkpoints older than it are rebuilt from the
        # run's config and data description, which determine the same model.
        glow = (
            GlowConfig.from_dict(json.loads(metadata["glow"]), where=str(weights_path))
            if "glow" in metadata
            else model_config(config, info)
        )
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise RuntimeError(f"{weights_path}: damaged checkpoint metadata ({error!r})") from None
    flow = Flow(Glow(glow))
    load_weights(flow, weights_path, state_dict)
    flow.to(device).eval()
    dequantizer = build_dequantizer(config, info)
    load_dequantizer(dequantizer, folder)
    dequantizer.to(device).eval()
    return LoadedRun(flow, config, info, step, folder, folder.parent.parent, use_ema, dequantizer)


def load_dequantizer(dequantizer: torch.nn.Module, folder: Path) -> None:
    """Load a learned dequantizer's weights from checkpoint ``folder`` (a uniform one has
    none)."""
    if dequantizer.state_dict():
        path = folder / DEQUANTIZER_FILE
        load_weights(dequantizer, path, read_weights(path)[0])
