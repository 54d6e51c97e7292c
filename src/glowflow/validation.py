"""Argument checks for ``validate_args=True``: clear ``ValueError``s that name the layer."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def check_batch(x: object, event_shape: Sequence[int], where: str, what: str = "input") -> None:
    """Check that ``x`` is a floating tensor of shape ``(B, *event_shape)`` with finite values.

    Raises ``ValueError`` whose message starts with ``where`` (the layer or method) and names
    the problem: not a tensor, wrong dtype, wrong shape, or NaN / infinite entries.
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"{where}: {what} must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise ValueError(f"{where}: {what} must be a floating-point tensor, got dtype {x.dtype}")
    check_event_shape(x, event_shape, where, what)
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        kind = "NaN" if bool(torch.isnan(x).any()) else "infinite"
        raise ValueError(f"{where}: {what} has {bad} non-finite ({kind}) entries")


def check_event_shape(x: Tensor, event_shape: Sequence[int], where: str, what: str = "input") -> None:
    """The one cheap check every entry makes, ``validate_args`` or not: ``x`` is
    ``(B, *event_shape)``, else a ``ValueError`` naming ``where`` and both shapes."""
    expected = tuple(event_shape)
    if x.dim() != len(expected) + 1 or tuple(x.shape[1:]) != expected:
        raise ValueError(
            f"{where}: {what} must have shape (B, {', '.join(map(str, expected))}), "
            f"got {tuple(x.shape)}"
        )
