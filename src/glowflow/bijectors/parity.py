"""NICE's coupling on vectors: odd entries given even ones, or the other way round."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .base import sum_except_batch, zero_logdet
from .coupling import _Coupling


class ParityCoupling(_Coupling):
    """A coupling on ``(B, D)`` that partitions the entries by index parity, the 1-D
    counterpart of :class:`~glowflow.bijectors.coupling.CheckerboardCoupling` (NICE's
    odd/even partition, Dinh et al. 2015 section 5.1).

    The ``D_b`` entries with ``i % 2 == parity`` condition the ``D_a`` others; ``network``
    maps ``(B, D_b) -> (B, D_a)`` (additive: the shift ``t``) or ``(B, 2 D_a)`` (affine:
    shift, then scale logits). With ``x_a, x_b`` the two sets:

    * additive forward: ``y_a = x_a + t(x_b)``, ``log|det| = 0``; inverse ``x_a = y_a - t``;
    * affine forward: ``y_a = x_a * s(x_b) + t(x_b)``, ``log|det| = sum(log s)``; inverse
      ``x_a = (y_a - t) / s``, the negated log-det.

    ``y_b = x_b`` either way; the entries stay in place.
    """

    def __init__(
        self,
        features: int,
        network: nn.Module,
        kind: str = "additive",
        scale_fn: str = "exp",
        parity: int = 0,
    ) -> None:
        super().__init__(network, kind, scale_fn)
        if features < 2 or parity not in (0, 1):
            raise ConfigError(
                f"ParityCoupling needs features >= 2 and parity 0 or 1, got {features}, {parity}"
            )
        self.event_shape = (features,)
        self.parity = parity
        self.register_buffer("conditioning", torch.arange(parity, features, 2), persistent=False)
        self.register_buffer("transformed", torch.arange(1 - parity, features, 2), persistent=False)

    @property
    def num_conditioning(self) -> int:
        """``D_b``, the entries the network reads."""
        return len(self.conditioning)

    @property
    def num_transformed(self) -> int:
        """``D_a``, the entries the coupling changes."""
        return len(self.transformed)

    def condition(self, x: Tensor) -> Tensor:
        return x.index_select(1, self.conditioning)

    def couple(
        self, x: Tensor, shift: Tensor, log_scale: Optional[Tensor], inverse: bool = False
    ) -> tuple[Tensor, Tensor]:
        part = x.index_select(1, self.transformed)
        if log_scale is None:
            out, logdet = (part - shift if inverse else part + shift), zero_logdet(x)
        else:
            out, logdet = self.affine(part, shift, log_scale, inverse), sum_except_batch(log_scale)
            logdet = -logdet if inverse else logdet
        return x.index_copy(1, self.transformed, out), logdet

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, features={self.event_shape[0]}, parity={self.parity}"
