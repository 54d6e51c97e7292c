"""Coupling layers (NICE, RealNVP, Glow): channel-wise and checkerboard masks.

A coupling splits its input into a conditioning part ``x_b`` that passes unchanged and a
transformed part ``x_a`` whose shift ``t`` and log-scale ``log s`` come from a network of
``x_b``:

* affine, forward:   ``y_a = x_a * s + t``,     ``log|det| = sum(log s)``
* affine, inverse:   ``x_a = (y_a - t) / s``,   ``log|det| = -sum(log s)``
* additive (NICE):   ``y_a = x_a + t``,         ``log|det| = 0``

``log s`` is ``scale_fn`` applied to the network's raw output ``h``: ``"exp"`` gives
``log s = h`` (TFP, RealNVP), ``"sigmoid"`` gives ``s = sigmoid(h + 2)`` (the official Glow
code; bounded, so more stable, but not the identity at zero initialization).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import GlowConfig
from .base import Bijector, Rebuilt, Shape, check_channels, sum_except_batch, zero_logdet

SCALE_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "exp": lambda raw: raw,
    "sigmoid": lambda raw: F.logsigmoid(raw + 2.0),
}
"""``log s`` from the network's raw scale output ``h``, by ``GlowConfig.scale_fn`` name."""


def network_channels(kind: str, transformed_channels: int) -> int:
    """Output channels the network needs: ``2 * C_a`` (shift, scale) for affine, ``C_a`` else."""
    kinds = GlowConfig.choices("coupling")
    if kind not in kinds:
        raise ValueError(f"coupling must be one of {kinds}, got {kind!r}")
    return 2 * transformed_channels if kind == "affine" else transformed_channels


class _Coupling(Bijector):
    """Shared transform of the coupling layers; subclasses choose the split.

    ``y = couple(x, NN(condition(x)))``: :meth:`condition` is the part of the input that passes
    unchanged (so ``condition(y) == condition(x)`` and the inverse reads the same network
    output), :meth:`couple` the map given the network's output. :meth:`rebuild` uses this split
    to evaluate the network once when the invertible memory mode rebuilds an input.
    """

    def __init__(self, network: nn.Module, kind: str, scale_fn: str) -> None:
        super().__init__()
        network_channels(kind, 1)  # validates kind
        if scale_fn not in SCALE_FUNCTIONS:
            raise ValueError(f"scale_fn must be one of {tuple(SCALE_FUNCTIONS)}, got {scale_fn!r}")
        self.network = network
        self.kind = kind
        self.scale_fn = scale_fn

    def shift_and_log_scale(self, condition: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        """The network's output on ``condition``: shift ``t``, ``log s`` (``None``: additive)."""
        raw = self.network(condition)
        if self.kind == "additive":
            return raw, None
        shift, scale_raw = raw.chunk(2, dim=1)
        return shift, SCALE_FUNCTIONS[self.scale_fn](scale_raw)

    def condition(self, x: Tensor) -> Tensor:
        """The network's input: the part of ``x`` the coupling leaves unchanged."""
        raise NotImplementedError

    def couple(
        self, x: Tensor, shift: Tensor, log_scale: Optional[Tensor], inverse: bool = False
    ) -> tuple[Tensor, Tensor]:
        """The forward (or inverse) map of ``x`` and its log-det, given the network's output."""
        raise NotImplementedError

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return self.couple(x, *self.shift_and_log_scale(self.condition(x)))

    def rebuild(self, y: Tensor, context: Optional[Tensor] = None) -> Rebuilt:
        """One network pass serves the inverse and the recomputed forward: the network reads
        ``condition(y) == condition(x)``, a leaf linked to ``condition(x)``."""
        with torch.enable_grad():
            condition = self.condition(y).detach().requires_grad_()
            shift, log_scale = self.shift_and_log_scale(condition)
        with torch.no_grad():
            x, _ = self.couple(y, shift, log_scale, inverse=True)
        x = x.detach().requires_grad_()
        with torch.enable_grad():
            output, logdet = self.couple(x, shift, log_scale)
            link = self.condition(x)
        return Rebuilt(x, output, logdet, ((condition, link),))

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return self.couple(y, *self.shift_and_log_scale(self.condition(y)), inverse=True)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, scale_fn={self.scale_fn!r}"


class ChannelCoupling(_Coupling):
    """Coupling split along channels: ``x = [x_b, x_a]`` with the last ``num_transformed``
    channels transformed, conditioned on the first ``C - num_transformed``.

    ``network`` maps ``(B, C - C_a, H, W) -> (B, 2 C_a, H, W)`` (affine: shift then scale
    logits) or ``(B, C_a, H, W)`` (additive). Default ``C_a = C // 2``.
    """

    def __init__(
        self,
        num_channels: int,
        network: nn.Module,
        kind: str = "affine",
        scale_fn: str = "exp",
        num_transformed: Optional[int] = None,
    ) -> None:
        super().__init__(network, kind, scale_fn)
        num_transformed = num_channels // 2 if num_transformed is None else num_transformed
        if not 0 < num_transformed < num_channels:
            raise ValueError(
                f"ChannelCoupling needs 0 < num_transformed < num_channels, got "
                f"num_transformed={num_transformed} of {num_channels} channels"
            )
        self.num_channels = num_channels
        self.num_transformed = num_transformed

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        cut = self.num_channels - self.num_transformed
        return x[:, :cut], x[:, cut:]

    def condition(self, x: Tensor) -> Tensor:
        return self._split(x)[0]

    def couple(
        self, x: Tensor, shift: Tensor, log_scale: Optional[Tensor], inverse: bool = False
    ) -> tuple[Tensor, Tensor]:
        condition, transformed = self._split(x)
        if log_scale is None:
            out = transformed - shift if inverse else transformed + shift
            return torch.cat([condition, out], dim=1), zero_logdet(x)
        if inverse:
            out = (transformed - shift) * (-log_scale).exp()
            return torch.cat([condition, out], dim=1), -sum_except_batch(log_scale)
        out = transformed * log_scale.exp() + shift
        return torch.cat([condition, out], dim=1), sum_except_batch(log_scale)

    def forward_shape(self, shape: Shape) -> Shape:
        return check_channels(self, shape, self.num_channels)

    inverse_shape = forward_shape


class CheckerboardCoupling(_Coupling):
    """RealNVP's checkerboard coupling: pixels with ``(i + j) % 2 == parity`` condition the
    others, across all channels.

    With ``m`` the ``(1, 1, H, W)`` 0/1 mask of conditioning pixels, ``network`` maps the
    masked input ``(B, C, H, W)`` to ``(B, 2C, H, W)`` (affine) or ``(B, C, H, W)``:

    * forward: ``y = m * x + (1 - m) * (x * s + t)``, ``log|det| = sum((1 - m) * log s)``
    * inverse: ``x = m * y + (1 - m) * (y - t) / s``, ``log|det| = -sum((1 - m) * log s)``
    """

    def __init__(
        self,
        event_shape: Shape,
        network: nn.Module,
        kind: str = "affine",
        scale_fn: str = "exp",
        parity: int = 0,
    ) -> None:
        super().__init__(network, kind, scale_fn)
        if len(event_shape) != 3:
            raise ValueError(f"CheckerboardCoupling needs a (C, H, W) shape, got {event_shape}")
        self.event_shape = tuple(event_shape)
        _, height, width = event_shape
        rows = torch.arange(height).view(-1, 1)
        cols = torch.arange(width).view(1, -1)
        mask = ((rows + cols) % 2 == parity).float().view(1, 1, height, width)
        self.register_buffer("mask", mask, persistent=False)
        self.parity = parity

    def condition(self, x: Tensor) -> Tensor:
        return x * self.mask.to(x.dtype)

    def couple(
        self, x: Tensor, shift: Tensor, log_scale: Optional[Tensor], inverse: bool = False
    ) -> tuple[Tensor, Tensor]:
        free = 1.0 - self.mask.to(x.dtype)  # shift and scale act on the other pixels only
        shift = shift * free
        if log_scale is None:
            return (x - shift if inverse else x + shift), zero_logdet(x)
        log_scale = log_scale * free
        if inverse:
            return (x - shift) * (-log_scale).exp(), -sum_except_batch(log_scale)
        return x * log_scale.exp() + shift, sum_except_batch(log_scale)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, parity={self.parity}"
