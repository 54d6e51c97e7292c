"""Argument checks for ``validate_args=True``: clear ``ValueError``s that name the layer; and
the search for a non-finite tensor that guards every weights file and checkpoint."""

from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence

import torch
from torch import Tensor

from .errors import ConfigError


def check_batch(
    x: object,
    event_shape: Sequence[int],
    where: str,
    what: str = "input",
    dtype: Optional[torch.dtype] = None,
) -> None:
    """Check that ``x`` is a non-empty floating tensor of shape ``(B, *event_shape)`` with
    finite values, of ``dtype`` (the model's) when given.

    Raises ``ValueError`` whose message starts with ``where`` (the layer or method) and names
    the problem: not a tensor, wrong dtype, wrong shape, an empty batch, or NaN / infinite
    entries.
    """
    if not isinstance(x, Tensor):
        raise ConfigError(f"{where}: {what} must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise ConfigError(f"{where}: {what} must be a floating-point tensor, got dtype {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        raise ConfigError(
            f"{where}: {what} has dtype {x.dtype} but the model's parameters are "
            f"{dtype}; convert one of them (x.to({dtype}) or model.to({x.dtype}))"
        )
    check_event_shape(x, event_shape, where, what)
    if x.shape[0] == 0:
        raise ConfigError(f"{where}: {what} is an empty batch (shape {tuple(x.shape)})")
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        kind = "NaN" if bool(torch.isnan(x).any()) else "infinite"
        raise ConfigError(f"{where}: {what} has {bad} non-finite ({kind}) entries")


def check_event_shape(
    x: Tensor, event_shape: Sequence[int], where: str, what: str = "input"
) -> None:
    """The one cheap check every entry makes, ``validate_args`` or not: ``x`` is
    ``(B, *event_shape)``, else a ``ValueError`` naming ``where`` and both shapes."""
    expected = tuple(event_shape)
    if x.dim() != len(expected) + 1 or tuple(x.shape[1:]) != expected:
        raise ConfigError(
            f"{where}: {what} must have shape (B, {', '.join(map(str, expected))}), "
            f"got {tuple(x.shape)}"
        )


def _tensors_in(value: Any, where: str) -> Iterator[tuple[str, Tensor]]:
    """``(dotted path, tensor)`` for every tensor in nested dicts, lists and tuples."""
    if isinstance(value, Tensor):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors_in(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _tensors_in(item, f"{where}.{index}" if where else str(index))


def first_non_finite(value: Any, where: str = "") -> Optional[str]:
    """The dotted path (under ``where``) of the first floating or complex tensor in ``value``
    (a tensor, or nested dicts, lists and tuples of them) holding a NaN or inf; ``None``."""
    for path, tensor in _tensors_in(value, where):
        if (tensor.is_floating_point() or tensor.is_complex()) and not torch.isfinite(tensor).all():
            return path
    return None
