"""NICE's diagonal scaling layer (Dinh, Krueger & Bengio 2015, section 3.3)."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .base import Bijector, logdet_dtype


class NICEScaling(Bijector):
    """Elementwise learned scaling ``y = x * exp(s)``, one ``s`` per entry of the event.

    NICE's additive couplings preserve volume; this last layer lets the model give each
    dimension its own scale (the paper's diagonal ``S``, parametrized exponentially).
    With ``s`` of shape ``event_shape``:

    * forward:  ``y = x * exp(s)``,    ``log|det dy/dx| = sum(s)``
    * inverse:  ``x = y * exp(-s)``,   ``log|det dx/dy| = -sum(s)``

    ``s`` starts at zero (the identity). Reference: L. Dinh, D. Krueger, Y. Bengio, NICE:
    Non-linear Independent Components Estimation, ICLR 2015 workshop, arXiv:1410.8516.
    """

    def __init__(self, event_shape: Sequence[int]) -> None:
        super().__init__()
        self.event_shape = tuple(int(s) for s in event_shape)
        self.log_scale = nn.Parameter(torch.zeros(self.event_shape))

    def _logdet(self, x: Tensor) -> Tensor:
        return self.log_scale.to(logdet_dtype(x)).sum().expand(x.shape[0])

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return x * self.log_scale.to(x.dtype).exp(), self._logdet(x)

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return y * (-self.log_scale.to(y.dtype)).exp(), -self._logdet(y)

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}"
