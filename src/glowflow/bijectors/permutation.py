"""Fixed channel permutations: RealNVP's reversal and Glow's random shuffle."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..errors import ConfigError
from .base import Bijector, Shape, check_channels, zero_logdet


class ChannelPermutation(Bijector):
    """Permutes channels (dim 1) by a fixed permutation ``perm``; volume preserving.

    * forward:  ``y[:, i] = x[:, perm[i]]``,       ``log|det| = 0``
    * inverse:  ``x[:, perm[i]] = y[:, i]``,       ``log|det| = 0``

    ``perm`` and its inverse are persistent buffers, so a shuffle survives ``state_dict``.
    Build with :meth:`reverse` (Dinh et al.) or :meth:`shuffle` (Glow's fixed random order).
    """

    def __init__(self, perm: Tensor) -> None:
        super().__init__()
        perm = torch.as_tensor(perm, dtype=torch.long)
        if perm.dim() != 1 or not torch.equal(perm.sort().values, torch.arange(len(perm))):
            raise ConfigError(f"ChannelPermutation needs a permutation of 0..C-1, got {perm}")
        self.num_channels = len(perm)
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))

    @classmethod
    def reverse(cls, num_channels: int) -> "ChannelPermutation":
        """The channel reversal ``perm = [C-1, ..., 0]`` of NICE and RealNVP."""
        return cls(torch.arange(num_channels - 1, -1, -1))

    @classmethod
    def shuffle(
        cls, num_channels: int, generator: Optional[torch.Generator] = None
    ) -> "ChannelPermutation":
        """A fixed uniformly random permutation drawn from ``generator``."""
        return cls(torch.randperm(num_channels, generator=generator))

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return x.index_select(1, self.perm), zero_logdet(x)

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return y.index_select(1, self.inverse_perm), zero_logdet(y)

    def forward_shape(self, shape: Shape) -> Shape:
        return check_channels(self, shape, self.num_channels)

    inverse_shape = forward_shape

    def extra_repr(self) -> str:
        return f"num_channels={self.num_channels}"
