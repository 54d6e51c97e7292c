"""Composition of bijectors."""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from ..errors import ConfigError
from .base import Bijector, Shape, zero_logdet


class Chain(Bijector):
    """Applies bijectors in list order: ``Chain(f1, f2, f3)`` is ``f3 o f2 o f1``.

    * forward: ``y = f_n(... f_1(x))``, ``log|det J| = sum_i log|det J_{f_i}|`` at each
      intermediate point;
    * inverse: ``x = f_1^{-1}(... f_n^{-1}(y))``, log-det the sum of the inverses' log-dets.

    Shapes are checked when the chain is built: starting from ``event_shape`` (or from the
    first declared ``event_shape`` in the list), each bijector's :meth:`forward_shape` must
    accept the previous output. A mismatch raises ``ValueError`` naming the index and class.
    """

    def __init__(self, *bijectors: Bijector, event_shape: Optional[Shape] = None) -> None:
        super().__init__()
        for index, bijector in enumerate(bijectors):
            if not isinstance(bijector, Bijector):
                raise ConfigError(
                    f"Chain element {index} is a {type(bijector).__name__}, not a Bijector"
                )
        self.bijectors = nn.ModuleList(bijectors)
        if event_shape is None and bijectors:
            event_shape = bijectors[0].event_shape
        self.event_shape = None if event_shape is None else tuple(event_shape)
        self._check_shapes()

    def _check_shapes(self) -> None:
        shape = self.event_shape
        for index, bijector in enumerate(self.bijectors):
            if shape is None:
                shape = bijector.event_shape
            if shape is None:
                continue
            try:
                shape = bijector.forward_shape(shape)
            except ValueError as error:
                raise ConfigError(
                    f"Chain element {index} ({type(bijector).__name__}) cannot take event "
                    f"shape {shape}: {error}"
                ) from error

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        total = zero_logdet(x)
        for bijector in self.bijectors:
            x, logdet = bijector(x, context)
            total = total + logdet
        return x, total

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        total = zero_logdet(y)
        for bijector in reversed(self.bijectors):
            y, logdet = bijector.inverse(y, context)
            total = total + logdet
        return y, total

    def forward_shape(self, shape: Shape) -> Shape:
        for bijector in self.bijectors:
            shape = bijector.forward_shape(shape)
        return tuple(shape)

    def inverse_shape(self, shape: Shape) -> Shape:
        for bijector in reversed(self.bijectors):
            shape = bijector.inverse_shape(shape)
        return tuple(shape)

    def __len__(self) -> int:
        return len(self.bijectors)

    def __getitem__(self, index: int) -> Bijector:
        return self.bijectors[index]
