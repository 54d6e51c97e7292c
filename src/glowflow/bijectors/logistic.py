"""NICE's logistic prior as a bijector onto glowflow's standard normal base."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.special import log_ndtr, ndtri

from .base import Bijector, sum_except_batch

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def logistic_log_density(z: Tensor) -> Tensor:
    """Elementwise ``log logistic(z) = log sigmoid(z) + log sigmoid(-z)
    = -softplus(z) - softplus(-z)``, stable for any ``z``."""
    return -F.softplus(z) - F.softplus(-z)


def _normal_log_density(u: Tensor) -> Tensor:
    return -0.5 * u.square() - _HALF_LOG_2PI


class LogisticToNormal(Bijector):
    """Elementwise ``u = Phi^{-1}(sigmoid(z))``: standard logistic ``z`` to standard normal
    ``u`` (both CDFs matched), any event shape.

    Placed last in a flow whose base is ``N(0, I)``, it makes the prior on ``z`` the logistic
    of NICE (Dinh et al. 2015, section 3.4): ``log N(u) + log|det du/dz| = log logistic(z)``.

    * forward:  ``u = Phi^{-1}(sigmoid(z))``,
      ``log|det| = sum(log logistic(z) - log N(u; 0, 1))``;
    * inverse:  ``z = log Phi(u) - log Phi(-u)`` (the logit of ``Phi(u)``), the negated
      log-det.

    Stable in float32 for ``|z|`` up to about 87 (where ``sigmoid(-|z|)`` underflows): the
    forward evaluates ``Phi^{-1}`` only below one half, ``u = -Phi^{-1}(sigmoid(-z))`` for
    ``z > 0``, and the inverse works with ``log Phi`` (``torch.special.log_ndtr``) throughout.
    """

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        lower = ndtri(torch.sigmoid(torch.where(x > 0, -x, x)))  # Phi^{-1}(sigmoid(-|x|)) <= 0
        u = torch.where(x > 0, -lower, lower)
        return u, sum_except_batch(logistic_log_density(x) - _normal_log_density(u))

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        z = log_ndtr(y) - log_ndtr(-y)
        return z, sum_except_batch(_normal_log_density(y) - logistic_log_density(z))
