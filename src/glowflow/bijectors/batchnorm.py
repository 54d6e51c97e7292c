"""Batch normalization as a bijector (RealNVP, Dinh et al. 2017 section 3.7; MAF,
Papamakarios et al. 2017 section 3.4)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .base import Bijector, Shape, check_channels, logdet_dtype


class BatchNormBijector(Bijector):
    """Per-channel normalization ``y = (x - m) / sqrt(v + eps) * exp(log_gamma) + beta``.

    For an input ``(B, C, *S)`` (``S`` spatial dims, possibly none: vectors ``(B, D)`` are
    normalized per entry) with ``P = prod(S)`` positions, and ``(m, v)`` per channel:

    * forward:  as above, ``log|det| = P * sum_c(log_gamma_c - 0.5 log(v_c + eps))``;
    * inverse:  ``x = (y - beta) * exp(-log_gamma) * sqrt(v + eps) + m``, the negated log-det.

    In training mode ``forward`` uses the batch's mean and (biased) variance over the batch and
    spatial dims -- the log-det then depends on the batch, and its gradient flows through
    ``v`` as in the papers -- and moves the running averages ``running_mean``,
    ``running_var`` (buffers, saved with the model) by ``momentum`` towards them. In eval mode
    it uses the running statistics, so it is a fixed affine map and ``forward``/``inverse``
    are exact inverses. ``inverse`` always uses the running statistics (a batch of latents has
    no data statistics), so call ``eval()`` before sampling or decoding. Starts with
    ``log_gamma = beta = 0``, running mean 0 and variance 1.
    """

    def __init__(self, num_channels: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        if num_channels < 1 or not 0.0 < momentum <= 1.0 or eps <= 0.0:
            raise ConfigError(
                f"BatchNormBijector needs num_channels >= 1, 0 < momentum <= 1 and eps > 0, got "
                f"{num_channels}, {momentum}, {eps}"
            )
        self.num_channels = num_channels
        self.momentum = momentum
        self.eps = eps
        self.log_gamma = nn.Parameter(torch.zeros(num_channels))
        self.beta = nn.Parameter(torch.zeros(num_channels))
        self.register_buffer("running_mean", torch.zeros(num_channels))
        self.register_buffer("running_var", torch.ones(num_channels))

    def _broadcast(self, param: Tensor, x: Tensor) -> Tensor:
        return param.view(1, -1, *([1] * (x.dim() - 2))).to(x.dtype)

    def _statistics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, variance)`` per channel: the batch's in training (updating the running
        averages), the running ones in eval."""
        if not self.training:
            return self.running_mean, self.running_var
        dims = [d for d in range(x.dim()) if d != 1]
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, unbiased=False)
        with torch.no_grad():
            self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
            self.running_var.lerp_(var.detach().to(self.running_var.dtype), self.momentum)
        return mean, var

    def _logdet(self, x: Tensor, var: Tensor) -> Tensor:
        dtype = logdet_dtype(x)
        positions = x[0, 0].numel()
        per_channel = self.log_gamma.to(dtype) - 0.5 * torch.log(var.to(dtype) + self.eps)
        return (positions * per_channel.sum()).expand(x.shape[0])

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        mean, var = self._statistics(x)
        scale = (
            torch.rsqrt(self._broadcast(var, x) + self.eps)
            * self._broadcast(self.log_gamma, x).exp()
        )
        y = (x - self._broadcast(mean, x)) * scale + self._broadcast(self.beta, x)
        return y, self._logdet(x, var)

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        mean, var = self.running_mean, self.running_var
        scale = (
            torch.sqrt(self._broadcast(var, y) + self.eps)
            * (-self._broadcast(self.log_gamma, y)).exp()
        )
        x = (y - self._broadcast(self.beta, y)) * scale + self._broadcast(mean, y)
        return x, -self._logdet(y, var)

    def forward_shape(self, shape: Shape) -> Shape:
        return check_channels(self, shape, self.num_channels)

    inverse_shape = forward_shape

    def extra_repr(self) -> str:
        return f"num_channels={self.num_channels}, momentum={self.momentum}, eps={self.eps}"
