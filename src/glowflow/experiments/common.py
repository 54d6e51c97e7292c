"""Helpers shared by the experiments: class conditioning and batched encode/decode."""

from __future__ import annotations

from typing import Iterator, Optional

import torch
from torch import Tensor

from ..bijectors.prior import ClassConditionalPrior
from ..errors import ConfigError
from ..flow import Flow

Latents = list[Tensor]


def class_prior(flow: Flow) -> Optional[ClassConditionalPrior]:
    """The flow's class-conditional top prior (a Glow's), or ``None``: a model that is not
    conditional, or whose conditioning is no such prior."""
    prior = getattr(flow.bijector, "top_prior", None)
    return prior if isinstance(prior, ClassConditionalPrior) else None


def condition(flow: Flow, y: Optional[Tensor]) -> Optional[Tensor]:
    """The context to pass to ``flow``: ``y`` for a class-conditional model, else ``None``.

    Raises :class:`~glowflow.errors.ConfigError` when a class-conditional model gets no labels.
    """
    if flow.num_classes is None:
        return None
    if y is None:
        raise ConfigError("this model is class-conditional: labels (y) are required")
    return y


def class_weights(flow: Flow, y: Tensor) -> Tensor:
    """Labels ``(B,)`` or weights ``(B, K)`` as float ``(B, K)`` class weights of ``flow``."""
    prior = class_prior(flow)
    if prior is None:
        raise ConfigError("class weights need a class-conditional model (num_classes=...)")
    return prior.class_weights(y)


def batches(
    x: Tensor, y: Optional[Tensor], batch_size: int
) -> Iterator[tuple[Tensor, Optional[Tensor]]]:
    """``(x, y)`` in consecutive chunks of at most ``batch_size`` examples."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, x.shape[0], batch_size):
        stop = start + batch_size
        yield x[start:stop], None if y is None else y[start:stop]


@torch.no_grad()
def encode_all(flow: Flow, x: Tensor, y: Optional[Tensor] = None, batch_size: int = 256) -> Latents:
    """``flow.encode`` of a large batch, chunk by chunk: per-level ``(B, C_i, H_i, W_i)``."""
    chunks = [flow.encode(xb, condition(flow, yb)) for xb, yb in batches(x, y, batch_size)]
    return [torch.cat(level, dim=0) for level in zip(*chunks)]
