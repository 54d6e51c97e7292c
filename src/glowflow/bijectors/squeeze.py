"""Squeeze: space to depth, 2x2 spatial tiles into channels (RealNVP, Glow)."""

from __future__ import annotations

from typing import Optional

from torch import Tensor

from ..errors import ConfigError
from .base import Bijector, Shape, zero_logdet


class Squeeze(Bijector):
    """Moves each ``f x f`` spatial tile into channels: ``(B, C, H, W) -> (B, C f^2, H/f, W/f)``.

    Output channel ``c * f^2 + i * f + j`` at position ``(h, w)`` holds input channel ``c`` at
    ``(h f + i, w f + j)``: for one channel and ``f = 2`` the tile ``[[1, 2], [3, 4]]`` becomes
    the channel vector ``[1, 2, 3, 4]`` (the figure of TFP's ``Expand``, which is this
    bijector's inverse). A pure permutation of entries: ``log|det| = 0`` both ways.
    """

    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        if factor < 1:
            raise ConfigError(f"Squeeze factor must be >= 1, got {factor}")
        self.factor = factor

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        batch, channels, height, width = x.shape
        self.forward_shape((channels, height, width))
        f = self.factor
        y = x.reshape(batch, channels, height // f, f, width // f, f)
        y = y.permute(0, 1, 3, 5, 2, 4).reshape(batch, channels * f * f, height // f, width // f)
        return y, zero_logdet(x)

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        batch, channels, height, width = y.shape
        self.inverse_shape((channels, height, width))
        f = self.factor
        x = y.reshape(batch, channels // (f * f), f, f, height, width)
        x = x.permute(0, 1, 4, 2, 5, 3).reshape(batch, channels // (f * f), height * f, width * f)
        return x, zero_logdet(y)

    def forward_shape(self, shape: Shape) -> Shape:
        if len(shape) != 3:
            raise ConfigError(f"Squeeze needs a (C, H, W) event shape, got {tuple(shape)}")
        channels, height, width = shape
        if height % self.factor or width % self.factor:
            raise ConfigError(
                f"Squeeze with factor {self.factor} needs H and W divisible by {self.factor}, "
                f"got H={height}, W={width}"
            )
        f2 = self.factor**2
        return (channels * f2, height // self.factor, width // self.factor)

    def inverse_shape(self, shape: Shape) -> Shape:
        if len(shape) != 3:
            raise ConfigError(f"Squeeze needs a (C, H, W) event shape, got {tuple(shape)}")
        channels, height, width = shape
        f2 = self.factor**2
        if channels % f2:
            raise ConfigError(
                f"inverse Squeeze with factor {self.factor} needs C divisible by {f2}, got C={channels}"
            )
        return (channels // f2, height * self.factor, width * self.factor)

    def extra_repr(self) -> str:
        return f"factor={self.factor}"
