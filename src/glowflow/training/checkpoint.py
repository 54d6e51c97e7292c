"""Checkpoints: one folder per step, written atomically, and the loader other commands use.

Layout of ``RUN_DIR/checkpoints/step-00001000/``:

* ``model.safetensors``: the flow's ``state_dict`` (parameters and persistent buffers, ActNorm's
  ``initialized`` flag included, so a loaded model never re-initializes); its metadata holds
  ``format``, ``step``, the :class:`TrainConfig` and the :class:`DatasetInfo` as JSON;
* ``ema.safetensors``: the EMA weights, when the run keeps them;
* ``state.pt``: optimizer, learning-rate schedule, step, RNG and NaN-guard states.

A folder is filled under a temporary name and renamed into place (``os.replace``), so a killed
run leaves either a complete checkpoint or none. Unreadable, truncated or foreign files raise
``RuntimeError`` naming the file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..flow import Flow
from .config import TrainConfig
from .model import DatasetInfo, build_flow

FORMAT = "glowflow.checkpoint/1"
MODEL_FILE, EMA_FILE, STATE_FILE = "model.safetensors", "ema.safetensors", "state.pt"
_STEP_DIR = re.compile(r"^step-(\d+)$")

PathLike = Union[str, Path]


def checkpoint_dir(run_dir: PathLike) -> Path:
    """Where a run keeps its checkpoints."""
    return Path(run_dir) / "checkpoints"


def checkpoint_path(run_dir: PathLike, step: int) -> Path:
    """The folder of checkpoint ``step`` of a run (whether or not it exists)."""
    return checkpoint_dir(run_dir) / f"step-{step:08d}"


def _fsync_tree(folder: Path) -> None:
    for path in [*folder.iterdir(), folder]:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


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
) -> Path:
    """Write checkpoint ``step`` of a run atomically; returns its folder.

    ``state`` is the training state for ``state.pt`` (optimizer, schedule, RNG, ...); ``step``
    is added to it. An existing checkpoint of the same step is replaced.
    """
    final = checkpoint_path(run_dir, step)
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    temporary = root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    metadata = {
        "format": FORMAT,
        "step": str(step),
        "config": json.dumps(config.to_dict()),
        "dataset": json.dumps(info.to_dict()),
    }
    save_file(_weights(flow), str(temporary / MODEL_FILE), metadata=metadata)
    if ema_flow is not None:
        save_file(_weights(ema_flow), str(temporary / EMA_FILE), metadata=metadata)
    torch.save({"format": FORMAT, "step": step, **state}, temporary / STATE_FILE)
    _fsync_tree(temporary)
    if final.exists():
        stale = root / f".old-{final.name}-{os.getpid()}"
        os.replace(final, stale)
        shutil.rmtree(stale)
    os.replace(temporary, final)
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
    """A checkpoint folder from a run folder (its newest checkpoint), a checkpoint folder, or
    a file inside one. ``FileNotFoundError`` when there is none."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_file():
        path = path.parent
    if (path / MODEL_FILE).exists() or (path / STATE_FILE).exists():
        return path
    found = list_checkpoints(path)
    if not found:
        raise FileNotFoundError(f"{path} is neither a checkpoint nor a run folder with checkpoints")
    return found[-1]


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(state_dict, metadata)`` of a glowflow ``.safetensors`` file; clear errors if not."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} is missing")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # safetensors raises its own error types
        raise RuntimeError(f"{path} is not a readable safetensors file (truncated?): {error}")
    if metadata.get("format") != FORMAT:
        raise RuntimeError(
            f"{path} is not a glowflow checkpoint (format {metadata.get('format')!r}, "
            f"expected {FORMAT!r})"
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
        raise RuntimeError(f"{path} is not a readable training state (truncated?): {error}")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RuntimeError(f"{path} is not a glowflow training state")
    return state


def load_weights(module: torch.nn.Module, path: Path, state_dict: dict[str, torch.Tensor]) -> None:
    """``module.load_state_dict(state_dict)`` (strict), re-raised naming ``path``."""
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as error:
        raise RuntimeError(f"{path} does not fit this model: {error}") from None


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
    """

    flow: Flow
    config: TrainConfig
    info: DatasetInfo
    step: int
    checkpoint: Path
    run_dir: Path
    ema: bool

    @property
    def conditional(self) -> bool:
        """Whether the flow is class-conditional (needs ``y``)."""
        return self.config.conditional


def load_run(path: PathLike, device: Union[str, torch.device] = "cpu",
             ema: Optional[bool] = None) -> LoadedRun:
    """Load a trained flow from a run folder (its newest checkpoint) or a checkpoint.

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
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise RuntimeError(f"{weights_path}: damaged checkpoint metadata ({error!r})") from None
    flow = build_flow(config, info)
    load_weights(flow, weights_path, state_dict)
    flow.to(device).eval()
    return LoadedRun(flow, config, info, step, folder, folder.parent.parent, use_ema)
