"""Bits per dimension: the one definition glowflow uses everywhere."""

from __future__ import annotations

import math

from torch import Tensor

from .errors import ConfigError


def bits_per_dim(log_prob: Tensor, num_dims: int, n_bins: int) -> Tensor:
    """Discrete bits per dimension from a continuous log-density.

    Data with ``n_bins`` levels per dimension is scaled to a unit-width interval
    (level ``k`` -> ``[k, k + 1) / n_bins``, shifted by any constant) and uniformly dequantized;
    ``log_prob`` is the model's log-density of that continuous point, in nats, shape ``(B,)``.
    Each of the ``D = num_dims`` dimensions' bins has width ``1 / n_bins``, so

        ``bpd = (-log p(x) + D log n_bins) / (D log 2)``,

    an upper bound on the discrete model's code length. A uniform density on the unit cube
    (``log p = 0``) gives exactly ``log2(n_bins)``.
    """
    if num_dims < 1 or n_bins < 2:
        raise ConfigError(
            f"bits_per_dim needs num_dims >= 1 and n_bins >= 2, got {num_dims}, {n_bins}"
        )
    return (-log_prob + num_dims * math.log(n_bins)) / (num_dims * math.log(2.0))
