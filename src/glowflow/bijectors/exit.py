"""Exits of the multi-scale architecture: channels leave the flow, whitened by a learned
split prior (TFP's ``exit_bijector_fn``, Glow's ``split2d``)."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from ..config import GlowConfig
from ..errors import ConfigError
from .base import Bijector, Shape, zero_logdet
from .coupling import ChannelCoupling
from .networks import NetworkFn, ZeroConv2d, build_network

EXIT_PRIORS: tuple[str, ...] = GlowConfig.choices("exit_prior") or ()
"""How an exit whitens its channels (``GlowConfig.exit_prior``)."""


def default_exit_network(
    input_shape: Shape, output_channels: int, padding: str = "zeros"
) -> nn.Module:
    """Glow's split prior: a zero-initialized 3x3 conv giving a shift and a log-scale for each
    of the ``output_channels`` exiting channels, from the ``input_shape[0]`` continuing ones
    (border ``padding``, see :class:`ZeroConv2d`)."""
    return ZeroConv2d(input_shape[0], 2 * output_channels, padding=padding)


class GaussianSplitPrior(ChannelCoupling):
    """The PyTorch ports' split prior as a whitening coupling: the network gives the mean
    ``mu`` and log-sigma ``b`` of the exiting channels ``z`` given the continuing ``h``,
    and

    * forward:  ``z' = (z - mu) * exp(-b)``,   ``log|det| = -sum(b)``
    * inverse:  ``z = z' * exp(b) + mu``,      ``log|det| = +sum(b)``

    so ``log N(z'; 0, 1) + log|det|`` is the ports' ``log N(z; mu, exp(b)^2)``. It is the
    shift-before-scale affine coupling with shift ``-mu`` and log-scale ``-b``.
    """

    def __init__(
        self, num_channels: int, network: nn.Module, num_exit: int, output: str = "shift_scale"
    ) -> None:
        super().__init__(
            num_channels, network, "affine", "exp", num_exit, output, shift="before_scale"
        )

    def shift_and_log_scale(
        self, condition: Tensor, *context: Optional[Tensor]
    ) -> tuple[Tensor, Tensor]:
        mean, log_sigma = super().shift_and_log_scale(condition, *context)
        assert log_sigma is not None
        return -mean, -log_sigma


class ExitOutput(NamedTuple):
    """What :meth:`Exit.forward` returns.

    Attributes:
        continuing: the channels that go on, ``(B, C - num_exit, H, W)``.
        latent: the exiting channels, whitened, ``(B, num_exit, H, W)``.
        logdet: ``log|det|`` of the whitening, ``(B,)``.
    """

    continuing: Tensor
    latent: Tensor
    logdet: Tensor


class Exit(nn.Module):
    """Takes the last ``num_exit`` of ``C`` channels out of the flow and whitens them given the
    channels that go on. A bijection between ``x`` and the pair ``(continuing, latent)``.

    With ``x = [h, z]`` (``h`` continuing, ``C - num_exit`` channels; ``z`` exiting) and a
    network giving ``(t, log s) = NN(h)``:

    * forward:  ``(h, z * s + t)``, ``log|det| = sum(log s)`` -- the affine coupling that
      whitens ``z`` under its learned prior ``N(-t / s, 1 / s^2)``, so the exiting latent is
      standard normal under the base distribution;
    * inverse:  ``[h, (z' - t) / s]``, the negated log-det.

    The network starts at zero, so an exit starts as a standard normal prior on its channels.
    With nothing to condition on (``num_exit`` 0 or ``C``) the whitening is the identity and
    the latent (or the continuing part) simply has no channel. ``exit_bijector_fn`` may also
    return a :class:`Bijector` on the whole ``(C, H, W)`` tensor, used as the whitening itself.

    ``prior="gaussian"`` reads the network's two parts as a mean and a log-sigma instead
    (:class:`GaussianSplitPrior`); ``output`` orders its channels (see
    :func:`~glowflow.bijectors.coupling.split_output`), and ``padding`` is the border of the
    default network's zero convolution.
    """

    def __init__(
        self,
        event_shape: Shape,
        num_exit: int,
        exit_bijector_fn: Optional[NetworkFn] = None,
        prior: str = "affine",
        output: str = "shift_scale",
        padding: str = "zeros",
    ) -> None:
        super().__init__()
        channels, height, width = event_shape
        if not 0 <= num_exit <= channels:
            raise ConfigError(f"Exit needs 0 <= num_exit <= {channels}, got {num_exit}")
        if prior not in EXIT_PRIORS:
            raise ConfigError(f"Exit prior must be one of {EXIT_PRIORS}, got {prior!r}")
        self.event_shape = tuple(event_shape)
        self.num_exit = num_exit
        self.coupling: Optional[Bijector] = None
        if 0 < num_exit < channels:
            continuing_shape = (channels - num_exit, height, width)
            network = build_network(
                exit_bijector_fn or partial(default_exit_network, padding=padding),
                continuing_shape,
                num_exit,
                2 * num_exit,
                "exit_bijector_fn",
            )
            if isinstance(network, Bijector):
                network.forward_shape(self.event_shape)
                self.coupling = network
            elif prior == "gaussian":
                self.coupling = GaussianSplitPrior(channels, network, num_exit, output)
            else:
                self.coupling = ChannelCoupling(
                    channels, network, "affine", "exp", num_exit, output
                )

    @property
    def num_continuing(self) -> int:
        """Channels that go on to the next block."""
        return self.event_shape[0] - self.num_exit

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> ExitOutput:
        """``(B, C, H, W)`` -> continuing ``(B, C - num_exit, H, W)``, whitened latent
        ``(B, num_exit, H, W)`` and the log-det ``(B,)``."""
        logdet = zero_logdet(x)
        if self.coupling is not None:
            x, logdet = self.coupling(x, context)
        return ExitOutput(x[:, : self.num_continuing], x[:, self.num_continuing :], logdet)

    def inverse(
        self, continuing: Tensor, latent: Tensor, context: Optional[Tensor] = None
    ) -> tuple[Tensor, Tensor]:
        """The exact inverse of :meth:`forward`: ``(x (B, C, H, W), log|det| (B,))``."""
        x = torch.cat([continuing, latent], dim=1)
        if self.coupling is None:
            return x, zero_logdet(x)
        return self.coupling.inverse(x, context)

    def extra_repr(self) -> str:
        return f"event_shape={self.event_shape}, num_exit={self.num_exit}"
