"""Patchify: an image as a sequence of patch tokens, for the transformer flows."""

from __future__ import annotations

import math
from typing import Optional

from torch import Tensor

from ..errors import ConfigError
from .base import Bijector, Shape, zero_logdet


class Patchify(Bijector):
    """``(B, C, H, W) -> (B, T, C p^2)`` with ``T = (H / p)(W / p)`` non-overlapping ``p x p``
    patches; a pure permutation of entries, ``log|det| = 0`` both ways.

    Token ``t = i (W / p) + j`` is the patch at rows ``[i p, (i + 1) p)`` and columns
    ``[j p, (j + 1) p)`` (patches in raster order); its entry ``c p^2 + k p + l`` is channel
    ``c`` at ``(i p + k, j p + l)`` -- the order of ``torch.nn.functional.unfold`` with kernel
    and stride ``p``, which ml-tarflow uses, so its checkpoints convert without reordering.

    Args:
        patch_size: ``p``.
        event_shape: the image shape ``(C, H, W)``; without it the inverse assumes square
            images (``T`` a square number).
    """

    def __init__(self, patch_size: int, event_shape: Optional[Shape] = None) -> None:
        super().__init__()
        if patch_size < 1:
            raise ConfigError(f"Patchify: patch_size must be >= 1, got {patch_size}")
        self.patch_size = patch_size
        self.event_shape = None if event_shape is None else tuple(event_shape)
        if self.event_shape is not None:
            self.forward_shape(self.event_shape)

    def forward_shape(self, shape: Shape) -> Shape:
        p = self.patch_size
        if self.event_shape is not None and tuple(shape) != self.event_shape:
            raise ConfigError(f"Patchify was built for {self.event_shape}, got {tuple(shape)}")
        if len(shape) != 3 or shape[1] % p or shape[2] % p:
            raise ConfigError(
                f"Patchify({p}) needs an image shape (C, H, W) with H and W divisible by {p}, "
                f"got {tuple(shape)}"
            )
        channels, height, width = shape
        return ((height // p) * (width // p), channels * p * p)

    def inverse_shape(self, shape: Shape) -> Shape:
        p = self.patch_size
        if self.event_shape is not None:
            if tuple(shape) != self.forward_shape(self.event_shape):
                raise ConfigError(
                    f"Patchify was built for tokens {self.forward_shape(self.event_shape)}, got "
                    f"{tuple(shape)}"
                )
            return self.event_shape
        if len(shape) != 2 or shape[1] % (p * p) or math.isqrt(shape[0]) ** 2 != shape[0]:
            raise ConfigError(
                f"Patchify({p}) without an event shape inverts tokens (T, C {p}^2) of square "
                f"images (T a square), got {tuple(shape)}"
            )
        side = math.isqrt(shape[0]) * p
        return (shape[1] // (p * p), side, side)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        batch = x.shape[0]
        tokens, _ = self.forward_shape(tuple(x.shape[1:]))
        channels, height, width = x.shape[1:]
        p = self.patch_size
        patches = x.reshape(batch, channels, height // p, p, width // p, p)
        patches = patches.permute(0, 2, 4, 1, 3, 5)  # (B, H/p, W/p, C, p, p)
        return patches.reshape(batch, tokens, channels * p * p), zero_logdet(x)

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        channels, height, width = self.inverse_shape(tuple(y.shape[1:]))
        p = self.patch_size
        patches = y.reshape(y.shape[0], height // p, width // p, channels, p, p)
        image = patches.permute(0, 3, 1, 4, 2, 5).reshape(y.shape[0], channels, height, width)
        return image, zero_logdet(y)

    def extra_repr(self) -> str:
        return f"patch_size={self.patch_size}, event_shape={self.event_shape}"
