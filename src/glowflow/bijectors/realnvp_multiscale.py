"""RealNVP's multi-scale architecture (Dinh, Sohl-Dickstein & Bengio 2017, section 3.6)."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..validation import check_event_shape
from .base import Bijector, Shape, zero_logdet
from .batchnorm import BatchNormBijector
from .chain import Chain
from .coupling import ChannelCoupling, CheckerboardCoupling
from .exit import Exit
from .multiscale import LevelEncoding, MultiScaleBijector
from .permutation import ChannelPermutation
from .resnet import NORMALIZATIONS, resnet_network
from .squeeze import Squeeze

CHECKERBOARD_COUPLINGS = 3
CHANNEL_COUPLINGS = 3
LAST_SCALE_COUPLINGS = 4
"""The paper's couplings per scale: 3 checkerboard, squeeze, 3 channel-wise; the last scale 4
checkerboard."""


def _unwhitened_exit(input_shape: Shape, output_channels: int) -> Bijector:
    """The paper's factor-out: the exiting channels go to the ``N(0, I)`` base unchanged."""
    return Chain()


class RealNVPMultiScale(MultiScaleBijector):
    """RealNVP: ``num_scales`` scales on images ``(C, H, W)``, each latent ``N(0, I)``.

    Scale ``l < L - 1`` of input ``(C_l, H_l, W_l)``:

    1. 3 affine :class:`~glowflow.bijectors.coupling.CheckerboardCoupling` s, parities
       0, 1, 0 (the transformed pixels alternate);
    2. :class:`~glowflow.bijectors.squeeze.Squeeze` to ``(4 C_l, H_l / 2, W_l / 2)``;
    3. 3 affine :class:`~glowflow.bijectors.coupling.ChannelCoupling` s, each transforming the
       last ``2 C_l`` channels given the first, the halves swapped between them (so the masks
       alternate and the order is back after the third);
    4. the last ``2 C_l`` channels leave as the latent of level ``l`` (through an
       :class:`~glowflow.bijectors.exit.Exit`: unchanged, or whitened by Glow's learned prior
       with ``learn_split_prior``); the other ``2 C_l`` go on to scale ``l + 1``.

    The last scale is 4 checkerboard couplings, its output the top latent. Each coupling maps
    ``y_a = x_a * exp(c * tanh(h(x_b))) + t(x_b)`` with ``(t, h)`` from
    :func:`~glowflow.bijectors.resnet.resnet_network` (``num_res_blocks`` residual blocks of
    ``hidden_channels`` features, ``normalization`` batch or weight) and ``c`` a learned
    per-channel scale. With ``batch_norm_layers`` a
    :class:`~glowflow.bijectors.batchnorm.BatchNormBijector` follows every coupling (the
    paper's batch normalization of the coupling outputs).

    ``log p(x) = sum_l log N(z_l; 0, I) + log|det df/dx|``; latents come finest first
    (:meth:`forward_levels`), with each level's log-det. ``H`` and ``W`` must be divisible by
    ``2 ** (L - 1)``, and the last scale must have more than one pixel. In eval mode the map
    is an exact bijection (:meth:`inverse_levels` inverts it); in training mode the batch
    normalizations use the batch's statistics (see :class:`BatchNormBijector`).
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        num_scales: int = 2,
        hidden_channels: int = 64,
        num_res_blocks: int = 4,
        normalization: str = "batch",
        batch_norm_layers: bool = True,
        learn_split_prior: bool = False,
    ) -> None:
        super().__init__()
        shape = tuple(int(s) for s in event_shape)
        if len(shape) != 3:
            raise ConfigError(f"RealNVP needs an image shape (C, H, W), got {shape}")
        if num_scales < 1:
            raise ConfigError(f"RealNVP needs num_scales >= 1, got {num_scales}")
        if normalization not in NORMALIZATIONS:
            raise ConfigError(
                f"RealNVP normalization must be one of {NORMALIZATIONS}, got {normalization!r}"
            )
        factor = 2 ** (num_scales - 1)
        channels, height, width = shape
        if height % factor or width % factor:
            raise ConfigError(
                f"RealNVP with {num_scales} scales needs H and W divisible by {factor}, got {shape}"
            )
        if height * width == factor * factor:
            raise ConfigError(
                f"RealNVP with {num_scales} scales leaves {shape} a 1x1 last scale, which a "
                f"checkerboard mask cannot split: use fewer scales"
            )
        self.event_shape = shape
        self.num_scales = num_scales
        self.hidden_channels = hidden_channels
        self.num_res_blocks = num_res_blocks
        self.normalization = normalization
        self.batch_norm_layers = batch_norm_layers
        scales: list[Chain] = []
        exits: list[Exit] = []
        self.latent_shapes: list[Shape] = []
        for _ in range(num_scales - 1):
            scales.append(self._scale(shape))
            squeezed = (4 * shape[0], shape[1] // 2, shape[2] // 2)
            exit_fn = None if learn_split_prior else _unwhitened_exit
            exits.append(Exit(squeezed, squeezed[0] // 2, exit_fn))
            shape = (squeezed[0] // 2, *squeezed[1:])
            self.latent_shapes.append(shape)
        scales.append(self._scale(shape, last=True))
        self.latent_shapes.append(shape)
        self.scales = nn.ModuleList(scales)
        self.exits = nn.ModuleList(exits)

    def _normalized(self, coupling: Bijector, channels: int) -> list[Bijector]:
        """The coupling, followed by a batch normalization of its ``channels`` outputs."""
        return [coupling, BatchNormBijector(channels)] if self.batch_norm_layers else [coupling]

    def _network(self, in_channels: int, transformed: int) -> nn.Module:
        return resnet_network(
            in_channels, transformed, self.hidden_channels, self.num_res_blocks, self.normalization
        )

    def _scale(self, shape: Shape, last: bool = False) -> Chain:
        """The layers of one scale on input ``shape``, up to (not including) its exit."""
        channels = shape[0]
        layers: list[Bijector] = []
        for k in range(LAST_SCALE_COUPLINGS if last else CHECKERBOARD_COUPLINGS):
            coupling = CheckerboardCoupling(
                shape, self._network(channels, channels), "affine", "exp", parity=k % 2
            )
            layers += self._normalized(coupling, channels)
        if last:
            return Chain(*layers, event_shape=shape)
        layers.append(Squeeze())
        squeezed = 4 * channels
        half = squeezed // 2
        for k in range(CHANNEL_COUPLINGS):
            if k:
                layers.append(ChannelPermutation(torch.arange(squeezed).roll(half)))
            coupling = ChannelCoupling(squeezed, self._network(half, half), "affine", "exp")
            layers += self._normalized(coupling, squeezed)
        return Chain(*layers, event_shape=shape)

    def forward_levels(self, x: Tensor, context: Optional[Tensor] = None) -> LevelEncoding:
        """Images ``(B, C, H, W)`` -> per-level latents (finest first) and the log-det
        ``(B,)``, with each level's log-det."""
        check_event_shape(x, self.event_shape, "RealNVPMultiScale.forward")
        latents: list[Tensor] = []
        level_logdets: list[Tensor] = []
        h = x
        for index, scale in enumerate(self.scales):
            h, logdet = scale(h, context)
            if index < len(self.exits):
                h, latent, exit_logdet = self.exits[index](h, context)
                logdet = logdet + exit_logdet
            else:
                latent = h
            latents.append(latent)
            level_logdets.append(logdet)
        total = level_logdets[0]
        for logdet in level_logdets[1:]:
            total = total + logdet
        return LevelEncoding(latents, total, level_logdets, list(range(len(latents))))

    def inverse_levels(
        self, latents: Sequence[Tensor], context: Optional[Tensor] = None
    ) -> tuple[Tensor, Tensor]:
        """Per-level latents (as from :meth:`forward_levels`) -> ``(images, log-det)``."""
        latents = list(latents)
        if len(latents) != len(self.latent_shapes):
            raise ConfigError(
                f"RealNVPMultiScale.inverse: expected {len(self.latent_shapes)} latents of "
                f"shapes {self.latent_shapes}, got {len(latents)}"
            )
        for index, (z, shape) in enumerate(zip(latents, self.latent_shapes)):
            check_event_shape(z, shape, "RealNVPMultiScale.inverse", f"latent {index}")
        total = zero_logdet(latents[0])
        h = latents[-1]
        for index in reversed(range(len(self.scales))):
            if index < len(self.exits):
                h, logdet = self.exits[index].inverse(h, latents[index], context)
                total = total + logdet
            h, logdet = self.scales[index].inverse(h, context)
            total = total + logdet
        return h, total

    def extra_repr(self) -> str:
        return (
            f"event_shape={self.event_shape}, num_scales={self.num_scales}, "
            f"normalization={self.normalization!r}, batch_norm_layers={self.batch_norm_layers}"
        )
