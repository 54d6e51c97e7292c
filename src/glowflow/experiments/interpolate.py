"""Latent interpolation (the Glow paper's Figure 5): decode points on the line between two
images' latents, all levels at once."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..errors import ConfigError
from ..flow import Flow
from .common import class_prior, class_weights, condition


def lerp_weights(steps: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``steps`` evenly spaced weights from 0 to 1, both ends included."""
    if steps < 2:
        raise ConfigError(f"an interpolation needs steps >= 2 (both endpoints), got {steps}")
    return torch.linspace(0.0, 1.0, steps, dtype=dtype)


@torch.no_grad()
def interpolate(
    flow: Flow,
    x_a: Tensor,
    x_b: Tensor,
    steps: int = 8,
    y_a: Optional[Tensor] = None,
    y_b: Optional[Tensor] = None,
) -> Tensor:
    """Decode ``z(t) = (1 - t) z_a + t z_b`` for ``steps`` values of ``t`` in ``[0, 1]``.

    ``z_a = encode(x_a)`` and ``z_b = encode(x_b)`` are the exact latents of all levels (no
    resampling), so the first and last images are ``x_a`` and ``x_b`` up to float error.
    For a class-conditional model the labels ``y_a``/``y_b`` (scalars, or ``(K,)`` weights)
    are required and the class weights are interpolated the same way.

    Args:
        flow: the model.
        x_a, x_b: images ``(C, H, W)`` in ``[-0.5, 0.5)``.
        steps: number of images, endpoints included (>= 2).
        y_a, y_b: labels of the images, for a class-conditional model.

    Returns:
        ``(steps, C, H, W)`` decoded images, ``x_a`` first.
    """
    t = lerp_weights(steps)
    pair = torch.stack([x_a, x_b])
    labels = None
    if class_prior(flow) is not None:
        if y_a is None or y_b is None:
            raise ConfigError("this model is class-conditional: give the labels y_a and y_b")
        labels = class_weights(flow, torch.stack([y_a, y_b]).to(pair.device))
    z_a, z_b = zip(*(level.unbind(0) for level in flow.encode(pair, condition(flow, labels))))
    path = [torch.lerp(a, b, _column(t, a)) for a, b in zip(z_a, z_b)]
    context = None if labels is None else torch.lerp(labels[0], labels[1], _column(t, labels[0]))
    return flow.decode(path, context)


def _column(t: Tensor, like: Tensor) -> Tensor:
    """``t`` shaped ``(steps, 1, ..., 1)`` to broadcast against ``like``, on its device/dtype."""
    return t.to(like).reshape(-1, *([1] * like.dim()))
