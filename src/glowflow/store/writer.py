"""The one writer of model folders: signed weights, ``config.json``, the card, atomically.

:func:`replace_folder` fills a temporary sibling folder, flushes every file and the folder to
disk, then renames it into place (an existing folder of the name is restored if the rename
fails), so a killed or failed write leaves the previous folder as it was plus at worst a
``.tmp-NAME-PID`` folder. Checkpoints (:mod:`glowflow.training.checkpoint`) use the same
writer and the same files, adding the training state.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

import torch
from safetensors.torch import save as safetensors_bytes

from ..errors import ConfigError
from ..flow import Flow
from ..validation import first_non_finite
from .atomic import fsync_path
from .card import model_card
from .data import DataSpec
from .record import (
    CARD_FILE,
    CONFIG_FILE,
    DEQUANTIZER_FILE,
    FORMAT,
    WEIGHTS_FILE,
    dequantizer_record,
    make_record,
)
from .signed_weights import tensors_sha256

PathLike = Union[str, Path]


def weights_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s state dict as contiguous CPU tensors (what a weights file holds)."""
    return {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def signed_bytes(
    tensors: dict[str, torch.Tensor], metadata: Optional[dict[str, str]] = None
) -> bytes:
    """A safetensors file of ``tensors`` whose metadata holds the format and their sha256."""
    signed = {**(metadata or {}), "format": FORMAT, "sha256": tensors_sha256(tensors)}
    return safetensors_bytes(tensors, signed)


def write_model_files(
    folder: Path,
    record: Mapping[str, Any],
    weights: dict[str, torch.Tensor],
    dequantizer_weights: Optional[dict[str, torch.Tensor]] = None,
) -> None:
    """Write a model folder's files into the existing ``folder``: the signed weights, a learned
    dequantizer's weights, ``config.json`` and the card."""
    (folder / WEIGHTS_FILE).write_bytes(signed_bytes(weights))
    if dequantizer_weights:
        (folder / DEQUANTIZER_FILE).write_bytes(signed_bytes(dequantizer_weights))
    write_record(folder, record)


def write_record(folder: Path, record: Mapping[str, Any]) -> None:
    """Write ``config.json`` and the card generated from it into ``folder``."""
    (folder / CONFIG_FILE).write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
    (folder / CARD_FILE).write_text(model_card(record))


def replace_folder(final: Path, fill: Callable[[Path], None]) -> Path:
    """Make ``final`` the folder ``fill(temporary)`` writes, atomically and durably (see the
    module docstring); an ``OSError`` propagates after the temporary is removed."""
    final = Path(final)
    root = final.parent
    temporary = root / f".tmp-{final.name}-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
        fill(temporary)
        for path in [*temporary.iterdir(), temporary]:
            fsync_path(path)
        _move_into_place(temporary, final)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return final


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


def save_model(
    flow: Flow,
    path: PathLike,
    data: DataSpec,
    dequantizer: Optional[torch.nn.Module] = None,
    provenance: Optional[Mapping[str, Any]] = None,
    metrics: Optional[Mapping[str, Any]] = None,
    name: Optional[str] = None,
) -> Path:
    """Write ``flow`` (of any family) as a model folder at ``path`` (created or replaced);
    returns it.

    Args:
        flow: a flow built from a family config (``flow.config``; a Glow built with user
            network functions has none and is refused, since nothing could rebuild it).
        data: what the model reads (:class:`~glowflow.store.data.DataSpec`).
        dequantizer: the model's dequantizer (its ``settings`` are recorded, a learned one's
            weights saved); ``None``: uniform.
        provenance: where the weights came from (``command``, ``checkpoint``, ``step``,
            ``converted_from``, ``notes`` (a list of strings), ...).
        metrics: measured results, e.g. ``{"test_bpd": 2.31, "test_bpd_stderr": 0.02,
            "bound": "uniform dequantization", "measured": "297 test images x 8 draws"}``.
        name: the model's name on its card (default: the folder's name).

    Non-finite weights are refused, and a failed write leaves the previous folder as it was.
    """
    path = Path(path)
    if flow.config is None:
        raise ConfigError(
            f"cannot save a model folder at {path}: this {type(flow.bijector).__name__} was built "
            f"with user network functions (coupling_bijector_fn / exit_bijector_fn) or by hand, "
            f"so no config rebuilds it; build it from a family config (glowflow.families) or "
            f"save its state_dict with torch.save"
        )
    weights = weights_of(flow)
    extra = weights_of(dequantizer) if dequantizer is not None else {}
    bad = first_non_finite(weights) or first_non_finite(extra)
    if bad is not None:
        raise ConfigError(f"cannot save {path}: weight {bad} is not finite (NaN or inf)")
    settings = getattr(dequantizer, "settings", None) or dequantizer_record("uniform")
    record = make_record(
        flow.config,
        data,
        sum(p.numel() for p in flow.parameters()),
        settings,
        provenance,
        metrics,
        name or path.resolve().name,
    )
    return replace_folder(path, lambda folder: write_model_files(folder, record, weights, extra))
