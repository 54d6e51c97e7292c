"""The logistic sigmoid as a bijector from the real line onto the unit interval."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Bijector, sum_except_batch


class Sigmoid(Bijector):
    """Elementwise ``y = sigmoid(x) = 1 / (1 + exp(-x))``, from ``R^D`` onto ``(0, 1)^D``.

    * forward:  ``y = sigmoid(x)``, ``log|det| = sum(log sigmoid(x) + log sigmoid(-x))
      = -sum(softplus(x) + softplus(-x))``;
    * inverse:  ``x = log(y) - log(1 - y)``, the negated log-det at that ``x``.

    Shape preserving; any event shape.
    """

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return torch.sigmoid(x), -sum_except_batch(F.softplus(x) + F.softplus(-x))

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        x = torch.log(y) - torch.log1p(-y)
        return x, sum_except_batch(F.softplus(x) + F.softplus(-x))
