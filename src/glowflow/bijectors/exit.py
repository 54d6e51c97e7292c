"""Exits of the multi-scale architecture, with the learned split prior as a bijector."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .base import Bijector, Shape, zero_logdet
from .coupling import ChannelCoupling
from .networks import NetworkFn, ZeroConv2d, build_network


def default_exit_network(input_shape: Shape, output_channels: int) -> nn.Module:
    """Glow's split prior: a zero-initialized 3x3 conv giving a shift and a log-scale for each
    of the ``output_channels`` exiting channels, from the ``input_shape[0]`` continuing ones."""
    return ZeroConv2d(input_shape[0], 2 * output_channels)


class Exit(Bijector):
    """Marks the last ``num_exit`` of ``C`` channels as exiting, and normalizes them given the
    channels that go on (TFP's ``exit_bijector_fn``, Glow's learned split prior).

    With ``x = [h, z]`` (``h`` continuing, ``C - num_exit`` channels; ``z`` exiting) and a
    network giving ``(mu, log sigma) = NN(h)``:

    * forward:  ``[h, (z - mu) / sigma]`` -- written as the affine coupling
      ``z * s + t`` with ``log s = -log sigma`` learned directly, so the exiting latent is
      standard normal under the base distribution; ``log|det| = sum(log s)``;
    * inverse:  ``[h, z' * sigma + mu]``, the negated log-det.

    The network starts at zero, so an exit starts as a standard normal prior on its channels.
    Special cases: ``num_exit == 0`` (nothing exits) and ``num_exit == C`` (everything exits,
    nothing to condition on) are the identity. :meth:`split` and :meth:`merge` separate and
    rejoin the two parts; the map itself keeps the shape ``(B, C, H, W)``.
    """

    def __init__(
        self,
        event_shape: Shape,
        num_exit: int,
        exit_bijector_fn: Optional[NetworkFn] = None,
    ) -> None:
        super().__init__()
        channels, height, width = event_shape
        if not 0 <= num_exit <= channels:
            raise ValueError(f"Exit needs 0 <= num_exit <= {channels}, got {num_exit}")
        self.event_shape = tuple(event_shape)
        self.num_exit = num_exit
        self.coupling: Optional[Bijector] = None
        if 0 < num_exit < channels:
            continuing_shape = (channels - num_exit, height, width)
            network = build_network(
                exit_bijector_fn or default_exit_network,
                continuing_shape,
                num_exit,
                2 * num_exit,
                "exit_bijector_fn",
            )
            if isinstance(network, Bijector):
                network.forward_shape(self.event_shape)
                self.coupling = network
            else:
                self.coupling = ChannelCoupling(channels, network, "affine", "exp", num_exit)

    @property
    def num_continuing(self) -> int:
        """Channels that go on to the next block."""
        return self.event_shape[0] - self.num_exit

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, C, H, W) -> (continuing (B, C - num_exit, H, W), exiting (B, num_exit, H, W))``."""
        return x[:, : self.num_continuing], x[:, self.num_continuing :]

    @staticmethod
    def merge(continuing: Tensor, exiting: Tensor) -> Tensor:
        """Inverse of :meth:`split`: channel concatenation."""
        return torch.cat([continuing, exiting], dim=1)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        if self.coupling is None:
            return x, zero_logdet(x)
        return self.coupling(x, context)

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        if self.coupling is None:
            return y, zero_logdet(y)
        return self.coupling.inverse(y, context)

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}, num_exit={self.num_exit}"
