"""A fixed scaling of the data: a model trained on another data range, on glowflow's."""

from __future__ import annotations

import math
from typing import Optional

from torch import Tensor

from ..errors import ConfigError
from .base import Bijector, Shape, zero_logdet


class ConstantScale(Bijector):
    """``y = s x`` for a fixed ``s != 0``: ``log|det| = D log|s|`` (``D`` entries per
    example), inverse ``x = y / s`` with ``-D log|s|``. No parameters.

    ml-tarflow reads images in ``[-1, 1]``, glowflow's data lie in ``[-0.5, 0.5)``: its
    converted models start with ``ConstantScale(2)``, so ``log p(x) = log p_source(2 x) +
    D log 2``.
    """

    def __init__(self, scale: float, event_shape: Optional[Shape] = None) -> None:
        super().__init__()
        if scale == 0 or not math.isfinite(scale):
            raise ConfigError(f"ConstantScale needs a finite non-zero scale, got {scale}")
        self.scale = float(scale)
        self.event_shape = None if event_shape is None else tuple(event_shape)

    def _logdet(self, x: Tensor) -> Tensor:
        entries = math.prod(x.shape[1:])
        return zero_logdet(x) + entries * math.log(abs(self.scale))

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return x * self.scale, self._logdet(x)

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return y / self.scale, -self._logdet(y)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"
