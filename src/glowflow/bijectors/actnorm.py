"""Activation normalization (Kingma & Dhariwal 2018, section 3.1)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..errors import ConfigError
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
    ``initialized`` is a persistent buffer and the only record of the initialization
    (:attr:`is_initialized` reads it), so a model loaded from a ``state_dict``, or whose buffer
    was set by hand, never re-initializes.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        if num_channels < 1:
            raise ConfigError(f"ActNorm needs num_channels >= 1, got {num_channels}")
        self.num_channels = num_channels
        self.eps = eps
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.log_scale = nn.Parameter(torch.zeros(num_channels))
        self.register_buffer("initialized", torch.tensor(False))
        self._flag_value: bool  # the buffer's value when it was `_flag_seen`
        self._flag_seen: Optional[tuple[Tensor, int, int]]  # (buffer, data_ptr, version)
        self._remember(False)

    @property
    def is_initialized(self) -> bool:
        """Whether the data-dependent initialization has happened: the persistent
        ``initialized`` buffer, the one truth.

        Its value is cached on the host with the buffer's identity, storage address and version
        counter, so a read costs no device sync unless the buffer changed since the last read:
        every in-place write (``fill_``, ``copy_``, ``load_state_dict``) bumps the version, every
        replacement (``.to(device)``, assignment, ``load_state_dict(assign=True)``) changes the
        tensor, :func:`torch.utils.swap_tensors` its storage (the cache holds the old tensor, so
        its address is not reused).
        Writes that bypass the version counter (through ``.data``, a NumPy view, DDP's buffer
        broadcast) are not seen.
        Inside ``torch.compile`` the cached value is used as it is (branching on the buffer or
        on its version would break the graph); the next eager read checks it again.
        """
        if not torch.compiler.is_compiling():
            flag = self.initialized
            seen = self._flag_seen
            if seen is None or seen[0] is not flag or seen[1:] != (flag.data_ptr(), flag._version):
                self._remember(bool(flag))
        return self._flag_value

    def _remember(self, value: bool) -> None:
        """Cache ``value`` as the buffer's value at its present identity, address and version
        (inside ``torch.compile`` the version is no constant: the next eager read checks)."""
        flag = self.initialized
        self._flag_value = value
        compiling = torch.compiler.is_compiling()
        self._flag_seen = None if compiling else (flag, flag.data_ptr(), flag._version)

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
        self._remember(flag)

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
        if not self.is_initialized:
            self.initialize(x)
        y = (x + self._broadcast(self.bias, x)) * self._broadcast(self.log_scale, x).exp()
        return y, self._logdet(x)

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        x = y * (-self._broadcast(self.log_scale, y)).exp() - self._broadcast(self.bias, y)
        return x, -self._logdet(y)

    def forward_shape(self, shape: Shape) -> Shape:
        return check_channels(self, shape, self.num_channels)

    inverse_shape = forward_shape

    def extra_repr(self) -> str:
        return f"num_channels={self.num_channels}"
