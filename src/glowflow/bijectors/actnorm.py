"""Activation normalization (Kingma & Dhariwal 2018, section 3.1)."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from .base import Bijector, Shape, check_channels, logdet_dtype


class ActNorm(Bijector):
    """Per-channel affine map with data-dependent initialization.

    For an input of shape ``(B, C, *S)`` (``S`` the spatial dims, possibly none), with
    parameters ``bias`` and ``log_scale`` of shape ``(C,)`` and ``P = prod(S)`` positions:

    * forward:  ``y = (x + bias) * exp(log_scale)``,   ``log|det| = P * sum(log_scale)``
    * inverse:  ``x = y * exp(-log_scale) - bias``,    ``log|det| = -P * sum(log_scale)``

    Initialization: on the first ``forward`` call (or :meth:`initialize`) the parameters are
    set so that the output of that batch has zero mean and unit variance per channel:
    ``bias = -mean``, ``log_scale = -log(std)``. A channel whose std is below ``eps`` (a
    constant channel) gets ``log_scale = 0`` instead of an exploding scale. The flag
    ``initialized`` is a persistent buffer, so a model loaded from a ``state_dict`` never
    re-initializes.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        if num_channels < 1:
            raise ValueError(f"ActNorm needs num_channels >= 1, got {num_channels}")
        self.num_channels = num_channels
        self.eps = eps
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.log_scale = nn.Parameter(torch.zeros(num_channels))
        self.register_buffer("initialized", torch.tensor(False))
        self._initialized_on_host = False  # mirror of the buffer, read without a device sync

    @property
    def is_initialized(self) -> bool:
        """Whether the data-dependent initialization has happened (the persistent
        ``initialized`` buffer, mirrored on the host so reading it costs no device sync)."""
        return self._initialized_on_host

    def _broadcast(self, param: Tensor, x: Tensor) -> Tensor:
        return param.view(1, -1, *([1] * (x.dim() - 2))).to(x.dtype)

    def _logdet(self, x: Tensor) -> Tensor:
        positions = x[0, 0].numel()
        value = self.log_scale.to(logdet_dtype(x)).sum() * positions
        return value.expand(x.shape[0])

    def set_initialized(self, flag: bool) -> None:
        """Mark the layer initialized (its parameters are used as they are) or not (the next
        ``forward`` initializes them from its batch)."""
        self.initialized.fill_(flag)
        self._initialized_on_host = flag

    def reset_initialization(self) -> None:
        """Forget the initialization: the next ``forward`` initializes from its batch again."""
        self.set_initialized(False)

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set ``bias`` and ``log_scale`` from batch ``x`` (B, C, ...) and mark initialized."""
        dims = [d for d in range(x.dim()) if d != 1]
        mean = x.mean(dim=dims)
        std = x.std(dim=dims, unbiased=False) if x[:, 0].numel() > 1 else torch.ones_like(mean)
        log_scale = torch.where(std > self.eps, -torch.log(std.clamp_min(self.eps)), 0.0)
        self.bias.copy_(-mean)
        self.log_scale.copy_(log_scale)
        self.set_initialized(True)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        if not self._initialized_on_host:
            self.initialize(x)
        y = (x + self._broadcast(self.bias, x)) * self._broadcast(self.log_scale, x).exp()
        return y, self._logdet(x)

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        x = y * (-self._broadcast(self.log_scale, y)).exp() - self._broadcast(self.bias, y)
        return x, -self._logdet(y)

    def forward_shape(self, shape: Shape) -> Shape:
        return check_channels(self, shape, self.num_channels)

    inverse_shape = forward_shape

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args)
        self._initialized_on_host = bool(self.initialized)

    def extra_repr(self) -> str:
        return f"num_channels={self.num_channels}"
