"""Weights files signed with a sha256 of their tensors: the one reader behind checkpoints and
pretrained folders (``safetensors``, so loading never unpickles)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Union

import torch
from safetensors import safe_open

from ..errors import MissingFileError, ModelFileError
from ..validation import first_non_finite


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """Hex sha256 over the tensors' names, dtypes, shapes and bytes, in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous().cpu()
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def read_signed_weights(
    path: Path,
    expected_format: Union[str, tuple[str, ...]],
    kind: str,
    unsigned_ok: bool = False,
    remedy: str = "",
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a glowflow ``.safetensors`` file, checked.

    Guarantees: the file exists (else ``FileNotFoundError``), is readable safetensors whose
    metadata ``format`` is ``expected_format`` (or one of them), and its tensors match the stored ``sha256``.
    With ``unsigned_ok`` a file without a ``sha256`` (written before files were signed) is
    accepted when all its floating tensors are finite. Every failure is a ``RuntimeError`` that
    names the file and the cause, followed by ``remedy`` when given.
    """
    if not path.is_file():
        raise MissingFileError(f"{kind} file {path} is missing")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # safetensors raises its own error types
        raise ModelFileError(
            f"{path} is not a readable safetensors file (truncated?): {error}"
        ) from None
    suffix = f"; {remedy}" if remedy else ""
    formats = (expected_format,) if isinstance(expected_format, str) else expected_format
    if metadata.get("format") not in formats:
        raise ModelFileError(
            f"{path} is not a glowflow {kind} (format {metadata.get('format')!r}, "
            f"expected {formats[0]!r})"
        )
    stored = metadata.get("sha256")
    if stored is None:
        if not unsigned_ok:
            raise ModelFileError(f"{path} lacks the sha256 of its tensors{suffix}")
        bad = first_non_finite(tensors)
        if bad is not None:
            raise ModelFileError(f"{path} holds non-finite values (NaN or inf) in {bad}{suffix}")
        return tensors, metadata
    computed = tensors_sha256(tensors)
    if computed != stored:
        raise ModelFileError(
            f"{path} is corrupt: its tensors do not match the stored sha256 "
            f"({stored[:16]}..., computed {computed[:16]}...){suffix}"
        )
    return tensors, metadata


MAX_HEADER_BYTES = 100_000_000
"""The largest safetensors header read (the format's own limit)."""


def header_shapes(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """``({name: shape}, metadata)`` of a safetensors file from its header alone (8 bytes of
    length, then JSON), without reading a tensor; ``RuntimeError`` naming the file when the
    header is not one."""
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} is missing")
    try:
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if not 0 < size <= MAX_HEADER_BYTES:
                raise ValueError(f"a header of {size} bytes")
            header = json.loads(handle.read(size))
    except (OSError, ValueError) as error:
        raise RuntimeError(f"{path} is not a readable safetensors file: {error}") from None
    if not isinstance(header, dict):
        raise RuntimeError(f"{path} is not a readable safetensors file: its header is no table")
    shapes = {
        name: tuple(int(n) for n in entry["shape"])
        for name, entry in header.items()
        if name != "__metadata__" and isinstance(entry, dict) and "shape" in entry
    }
    metadata = header.get("__metadata__")
    return shapes, metadata if isinstance(metadata, dict) else {}
