"""The multi-scale interface: bijectors whose latent is a list of per-level tensors."""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError
from .base import Bijector, Shape


class LevelEncoding(NamedTuple):
    """What :meth:`MultiScaleBijector.forward_levels` returns.

    Attributes:
        latents: the per-level latents, finest first; latent ``i`` has shape
            ``(B, *latent_shapes[i])``.
        logdet: ``log|det|`` of the whole map, ``(B,)``.
        level_logdets: ``log|det J_l|`` of each level ``l`` ``(B,)``, summing to ``logdet``
            (``None`` when the bijector does not break it down).
        latent_levels: the level each latent came out of (with ``level_logdets``).
        raw_top: the top latent before a learned top prior, ``(B, *latent_shapes[-1])`` (what a
            class head reads; ``None`` without such a prior).
    """

    latents: list[Tensor]
    logdet: Tensor
    level_logdets: Optional[list[Tensor]] = None
    latent_levels: Optional[list[int]] = None
    raw_top: Optional[Tensor] = None

    def level_terms(self) -> tuple[list[list[Tensor]], list[Tensor]]:
        """``(latents of each level, log-det of each level)``; one level holding everything
        when the bijector does not break its log-det down."""
        if self.level_logdets is None or self.latent_levels is None:
            return [list(self.latents)], [self.logdet]
        grouped: list[list[Tensor]] = [[] for _ in self.level_logdets]
        for latent, level in zip(self.latents, self.latent_levels):
            grouped[level].append(latent)
        return grouped, list(self.level_logdets)


class MultiScaleBijector(Bijector):
    """A bijector from data ``(B, *event_shape)`` to a list of latents, one per level.

    Subclasses declare :attr:`latent_shapes` and implement :meth:`forward_levels` and
    :meth:`inverse_levels`; ``forward`` and ``inverse`` are derived and work on the flat
    ``(B, D)`` latent, the levels' latents flattened and concatenated in order
    (:meth:`flatten_latents`). :class:`~glowflow.Flow` programs against this interface, so a
    flow over a multi-scale bijector keeps its per-level latents.
    """

    latent_shapes: list[Shape]

    def forward_levels(self, x: Tensor, context: Optional[Tensor] = None) -> LevelEncoding:
        """Data ``(B, *event_shape)`` -> per-level latents and the log-det ``(B,)``."""
        raise NotImplementedError

    def inverse_levels(
        self, latents: Sequence[Tensor], context: Optional[Tensor] = None
    ) -> tuple[Tensor, Tensor]:
        """Per-level latents -> ``(data, log|det|)``: the exact inverse of :meth:`forward_levels`."""
        raise NotImplementedError

    @property
    def latent_size(self) -> int:
        """``D``, the size of the flat latent."""
        return sum(math.prod(shape) for shape in self.latent_shapes)

    def flatten_latents(self, latents: Sequence[Tensor]) -> Tensor:
        """Per-level latents -> the flat ``(B, D)`` latent (levels concatenated in order, each
        flattened channel-major)."""
        return torch.cat([z.reshape(z.shape[0], -1) for z in latents], dim=1)

    def unflatten_latents(self, z: Tensor) -> list[Tensor]:
        """The flat ``(B, D)`` latent -> per-level latents; inverse of :meth:`flatten_latents`."""
        sizes = [math.prod(shape) for shape in self.latent_shapes]
        if z.dim() != 2 or z.shape[1] != sum(sizes):
            raise ConfigError(
                f"{type(self).__name__}: flat latent must have shape "
                f"(B, {sum(sizes)}), got {tuple(z.shape)}"
            )
        parts = z.split(sizes, dim=1)
        return [p.reshape(z.shape[0], *shape) for p, shape in zip(parts, self.latent_shapes)]

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        encoding = self.forward_levels(x, context)
        return self.flatten_latents(encoding.latents), encoding.logdet

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return self.inverse_levels(self.unflatten_latents(y), context)

    def inverse_shape(self, shape: Shape) -> Shape:
        if tuple(shape) != (self.latent_size,):
            raise ConfigError(
                f"{type(self).__name__}'s flat latent has shape "
                f"({self.latent_size},), got {tuple(shape)}"
            )
        assert self.event_shape is not None
        return tuple(self.event_shape)

    def forward_shape(self, shape: Shape) -> Shape:
        Bijector.forward_shape(self, shape)
        return (self.latent_size,)
