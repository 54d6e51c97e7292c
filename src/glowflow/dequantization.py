"""Dequantization: integer levels to continuous data, uniform or learned (Flow++).

A flow ``p`` is a density on ``[-1/2, 1/2)^D``; data are integer levels ``k`` in
``[0, n_bins)^D``. With offsets ``u`` in ``[0, 1)^D`` and ``x = (k + u) / n_bins - 1/2``, the
discrete probability of ``k`` is ``P(k) = n_bins^-D E_q[p(x) / q(u | k)]`` for any density
``q(u | k)`` on the unit cube, so (Jensen)

    ``log P(k) >= E_q[log p(x) - log q(u | k)] - D log n_bins``       (the variational bound)
    ``log P(k) >= E[log (1/K) sum_i p(x_i) / q(u_i | k)] - D log n_bins`` (importance-weighted,
    ``K`` draws; tighter as ``K`` grows, Burda et al. 2016).

In bits per dimension, ``bpd = -(bound) / (D log 2)``, computed by
:func:`glowflow.metrics.bits_per_dim` from ``log p(x) - log q(u | k)``. The uniform ``q = 1``
gives the usual bound; a learned ``q`` (Ho et al. 2019, "Flow++") tightens it. Encoding and
decoding work on continuous ``x``: a dequantizer's draw, or uniform noise
(:func:`glowflow.data.dequantize`); sampling ``p`` is unchanged.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from .bijectors.base import Shape
from .bijectors.chain import Chain
from .bijectors.coupling import CheckerboardCoupling
from .bijectors.invconv import InvertibleConv1x1
from .bijectors.networks import glow_network
from .bijectors.sigmoid import Sigmoid
from .data.preprocess import dequantize_with, levels_to_unit
from .errors import ConfigError
from .flow import standard_normal_log_prob

DEQUANTIZATIONS = ("uniform", "variational")


class UniformDequantizer(nn.Module):
    """``q(u | k) = 1`` on ``[0, 1)^D``: ``u ~ U[0, 1)``, ``log q = 0``."""

    def __init__(self, n_bins: int) -> None:
        super().__init__()
        self.n_bins = n_bins
        self.settings: dict[str, Any] = {"kind": "uniform"}
        """How to rebuild this dequantizer (a model folder's ``dequantizer`` record)."""

    def noise(self, levels: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        """The base draws for ``levels`` ``(B, *event)``: ``u ~ U[0, 1)``, float32."""
        return torch.rand(levels.shape, generator=generator, device=levels.device)

    def forward(self, levels: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        """``(x, log q(u | k))``: ``x = (k + u) / n_bins - 1/2`` ``(B, *event)``, ``log q``
        ``(B,)`` zeros."""
        return dequantize_with(levels, noise, self.n_bins), noise.new_zeros(noise.shape[0])


class VariationalDequantizer(nn.Module):
    """A learned ``q(u | k)`` on ``(0, 1)^D``: a conditional flow pushed through a sigmoid.

    ``u = sigmoid(g(eps; c))`` with ``eps ~ N(0, I)`` of the data's shape ``(C, H, W)``, ``g``
    ``num_steps`` x [affine checkerboard coupling whose network reads the masked input and the
    features ``c``, alternating parity -> 1x1 convolution (for ``C > 1``)], and
    ``c = NN(k)`` a convolutional feature map of the levels (at their bin centres). Then

        ``log q(u | k) = log N(eps; 0, I) - log|det d u / d eps|``.

    The couplings start as the identity, so ``q`` starts as the logistic-normal
    ``sigmoid(N(0, I))``.
    """

    def __init__(
        self,
        event_shape: Shape,
        n_bins: int,
        num_steps: int = 4,
        hidden_channels: int = 32,
        feature_channels: int = 16,
    ) -> None:
        super().__init__()
        if len(event_shape) != 3:
            raise ConfigError(f"VariationalDequantizer needs a (C, H, W) shape, got {event_shape}")
        if num_steps < 1:
            raise ConfigError(f"VariationalDequantizer needs num_steps >= 1, got {num_steps}")
        channels = event_shape[0]
        self.n_bins = n_bins
        self.settings: dict[str, Any] = {
            "kind": "variational",
            "steps": num_steps,
            "hidden": hidden_channels,
        }
        """How to rebuild this dequantizer (a model folder's ``dequantizer`` record)."""
        self.features = nn.Sequential(
            nn.Conv2d(channels, hidden_channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden_channels, feature_channels, kernel_size=3, padding=1),
        )
        layers: list = []
        for index in range(num_steps):
            network = glow_network(channels + feature_channels, 2 * channels, hidden_channels)
            layers.append(
                CheckerboardCoupling(
                    tuple(event_shape),
                    network,
                    "affine",
                    "exp",
                    parity=index % 2,
                    context_channels=feature_channels,
                )
            )
            if channels > 1:
                layers.append(InvertibleConv1x1(channels))
        self.flow = Chain(*layers, Sigmoid(), event_shape=tuple(event_shape))

    def noise(self, levels: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        """The base draws for ``levels`` ``(B, *event)``: ``eps ~ N(0, I)``, float32."""
        return torch.randn(levels.shape, generator=generator, device=levels.device)

    def context(self, levels: Tensor) -> Tensor:
        """The features ``c`` ``(B, feature_channels, H, W)`` of the levels."""
        dtype = self.features[0].weight.dtype
        return self.features(levels_to_unit(levels, self.n_bins, dtype))

    def forward(self, levels: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        """``(x, log q(u | k))`` for base draws ``noise`` (``eps``): ``x (B, *event)``,
        ``log q (B,)``."""
        u, logdet = self.flow(noise, self.context(levels))
        log_q = standard_normal_log_prob([noise]) - logdet
        return dequantize_with(levels, u, self.n_bins), log_q


def make_dequantizer(
    kind: str, event_shape: Shape, n_bins: int, num_steps: int = 4, hidden_channels: int = 32
) -> nn.Module:
    """The dequantizer named ``kind`` (one of :data:`DEQUANTIZATIONS`)."""
    if kind == "uniform":
        return UniformDequantizer(n_bins)
    if kind == "variational":
        return VariationalDequantizer(event_shape, n_bins, num_steps, hidden_channels)
    raise ConfigError(f"dequantization must be one of {DEQUANTIZATIONS}, got {kind!r}")
