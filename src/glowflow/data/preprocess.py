"""Maps between integer grey levels and the continuous unit interval the flows model.

A dataset with ``n_bins`` grey levels yields integers ``k`` in ``[0, n_bins)``. The flows see
``x`` in ``[-0.5, 0.5)``, each level owning the bin ``[k / n_bins - 0.5, (k + 1) / n_bins - 0.5)``:

* :func:`dequantize` (training, test bits/dim): ``x = (k + u) / n_bins - 0.5``, ``u ~ U[0, 1)``;
* :func:`levels_to_unit` (deterministic pictures): the bin centre ``(k + 0.5) / n_bins - 0.5``;
* :func:`unit_to_levels` (inverse of both): ``k = floor((x + 0.5) * n_bins)``, clamped;
* :func:`unit_to_image` (saving pictures): the recovered level as an intensity
  ``k / (n_bins - 1)`` in ``[0, 1]``.

All functions work on tensors of any shape, typically a ``(B, C, H, W)`` batch, on any device.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError


def dequantize(
    levels: Tensor,
    n_bins: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Uniformly dequantize integer levels: ``x = (k + u) / n_bins - 0.5`` with ``u ~ U[0, 1)``.

    Args:
        levels: integer levels ``k`` in ``[0, n_bins)``, any shape (e.g. ``(B, C, H, W)``).
        n_bins: number of grey levels of the data.
        generator: optional random generator; it must live on ``levels.device``.
        dtype: floating dtype of the result.

    Returns:
        ``x`` of ``levels``' shape and device, in ``[-0.5, 0.5)``. Float rounding is corrected so
        that ``floor((x + 0.5) * n_bins)`` computed in ``dtype`` gives back ``levels`` exactly.
    """
    u = torch.rand(levels.shape, generator=generator, device=levels.device, dtype=dtype)
    return dequantize_with(levels, u, n_bins)


def dequantize_with(levels: Tensor, u: Tensor, n_bins: int) -> Tensor:
    """``x = (k + u) / n_bins - 0.5`` for given offsets ``u`` in ``[0, 1)`` (of ``levels``' shape;
    its dtype is the result's), with the float rounding corrected as in :func:`dequantize`."""
    k = levels.to(u.dtype)
    return _into_bins((k + u) / n_bins - 0.5, k, n_bins)


def _into_bins(x: Tensor, k: Tensor, n_bins: int) -> Tensor:
    """Step ``x`` by machine epsilon until ``floor((x + 0.5) * n_bins) == k`` everywhere.

    Rounding in ``(k + u) / n_bins - 0.5`` can land ``x`` on the neighbouring bin's edge
    (e.g. ``255 + u`` rounds to ``256`` in float32 when ``u`` is within ``2**-16`` of 1). Its
    rounding error is a few ulps and a step of ``eps`` moves ``x + 0.5`` by at least one of its
    ulps, so :data:`_BIN_STEPS` steps always suffice; the shift is below ``n_bins * eps`` of a
    bin (``3e-5`` for 256 bins in float32). The steps are taken unconditionally (a value inside
    its bin does not move), so no value is read on the host: no device sync, and
    ``torch.compile`` traces the training objective as one graph.
    """
    step = torch.finfo(x.dtype).eps
    for _ in range(_BIN_STEPS):
        recovered = torch.floor((x + 0.5) * n_bins)
        x = x - step * (recovered > k).to(x.dtype) + step * (recovered < k).to(x.dtype)
    return x


_BIN_STEPS = 4
"""Corrective steps of :func:`_into_bins` (the rounding error is at most 3 ulps)."""


def levels_to_unit(levels: Tensor, n_bins: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Deterministic bin centres ``(k + 0.5) / n_bins - 0.5``, for evaluation pictures."""
    return (levels.to(dtype) + 0.5) / n_bins - 0.5


def unit_to_levels(x: Tensor, n_bins: int) -> Tensor:
    """Integer levels ``floor((x + 0.5) * n_bins)`` clamped to ``[0, n_bins - 1]``, as int64."""
    return torch.floor((x + 0.5) * n_bins).clamp(0, n_bins - 1).long()


def unit_to_image(x: Tensor, n_bins: int) -> Tensor:
    """Intensities in ``[0, 1]`` for saving pictures: level ``k`` maps to ``k / (n_bins - 1)``.

    ``x`` may be any real tensor (e.g. samples); values outside ``[-0.5, 0.5)`` are clamped to the
    extreme levels. The result is float32 (or ``x``'s dtype when that is floating).
    """
    dtype = x.dtype if x.is_floating_point() else torch.float32
    return unit_to_levels(x, n_bins).to(dtype) / (n_bins - 1)


def reduce_bits(levels: Tensor, n_bits: int) -> Tensor:
    """Reduce 8-bit levels to ``n_bits`` bits: ``k -> k >> (8 - n_bits)``, ``n_bins = 2**n_bits``."""
    if not 1 <= n_bits <= 8:
        raise ConfigError(f"n_bits must be between 1 and 8, got {n_bits}")
    return levels >> (8 - n_bits)
