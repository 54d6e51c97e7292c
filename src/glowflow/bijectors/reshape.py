"""Reshape: the same entries in another event shape (images flattened for vector flows)."""

from __future__ import annotations

import math
from typing import Optional, Sequence

from torch import Tensor

from ..errors import ConfigError
from .base import Bijector, Shape, zero_logdet


class Reshape(Bijector):
    """``(B, *in_shape) -> (B, *out_shape)``, the entries kept in row-major order; a
    relabelling of coordinates, so ``log|det| = 0`` both ways.

    ``Reshape.flatten((C, H, W))`` maps images to vectors ``(B, C*H*W)``: a vector flow (NICE,
    MAF, IAF) placed after it models images while the :class:`~glowflow.Flow` keeps the image
    event shape, so its samples are images.
    """

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int]) -> None:
        super().__init__()
        self.event_shape = tuple(int(s) for s in in_shape)
        self.out_shape = tuple(int(s) for s in out_shape)
        if math.prod(self.event_shape) != math.prod(self.out_shape):
            raise ConfigError(
                f"Reshape: {self.event_shape} and {self.out_shape} hold different numbers of "
                f"entries ({math.prod(self.event_shape)} and {math.prod(self.out_shape)})"
            )

    @classmethod
    def flatten(cls, shape: Sequence[int]) -> "Reshape":
        """``(B, *shape) -> (B, prod(shape))``."""
        return cls(shape, (math.prod(shape),))

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return x.reshape(x.shape[0], *self.out_shape), zero_logdet(x)

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return y.reshape(y.shape[0], *self.event_shape), zero_logdet(y)

    def forward_shape(self, shape: Shape) -> Shape:
        Bijector.forward_shape(self, shape)
        return self.out_shape

    def inverse_shape(self, shape: Shape) -> Shape:
        if tuple(shape) != self.out_shape:
            raise ConfigError(
                f"Reshape's output has event shape {self.out_shape}, got {tuple(shape)}"
            )
        return self.event_shape

    def extra_repr(self) -> str:
        return f"{self.event_shape} -> {self.out_shape}"
