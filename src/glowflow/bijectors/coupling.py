"""Coupling layers (NICE, RealNVP, Glow): channel-wise and checkerboard masks.

A coupling splits its input into a conditioning part ``x_b`` that passes unchanged and a
transformed part ``x_a`` whose shift ``t`` and log-scale ``log s`` come from a network of
``x_b``:

* affine, forward:   ``y_a = x_a * s + t``,     ``log|det| = sum(log s)``
* affine, inverse:   ``x_a = (y_a - t) / s``,   ``log|det| = -sum(log s)``
* additive (NICE):   ``y_a = x_a + t``,         ``log|det| = 0``

``log s`` is ``scale_fn`` applied to the network's raw output ``h``: ``"exp"`` gives
``log s = h`` (RealNVP), ``"sigmoid"`` gives ``s = sigmoid(h + 2)`` (TFP's Glow and the
official Glow code; bounded, so more stable, but not the identity at zero initialization).

Two conventions of other implementations are options: ``output`` says which of the network's
``2 C_a`` channels are ``t`` and which ``h`` (:func:`split_output`), and ``shift="before_scale"``
applies the shift first, as the official code and its PyTorch ports do:

* before_scale, forward: ``y_a = (x_a + t) * s``,  inverse: ``x_a = y_a / s - t``
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import NETWORK_OUTPUTS, GlowConfig
from ..errors import ConfigError
from .base import Bijector, Rebuilt, Shape, check_channels, sum_except_batch, zero_logdet

SCALE_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "exp": lambda raw: raw,
    "sigmoid": lambda raw: F.logsigmoid(raw + 2.0),
}
"""``log s`` from the network's raw scale output ``h``, by ``GlowConfig.scale_fn`` name."""


SHIFT_ORDERS: tuple[str, ...] = GlowConfig.choices("coupling_shift") or ()
"""Where an affine coupling adds its shift: ``x * s + t`` or ``(x + t) * s``
(``GlowConfig.coupling_shift``)."""


def split_output(raw: Tensor, order: str) -> tuple[Tensor, Tensor]:
    """A network's ``(B, 2C, H, W)`` output as its two ``(B, C, H, W)`` parts ``(a, b)`` (shift
    and scale logits): ``"shift_scale"`` halves in that order, ``"scale_shift"`` halves the
    other way round, ``"interleaved"`` even channels then odd channels."""
    if order == "shift_scale":
        a, b = raw.chunk(2, dim=1)
        return a, b
    if order == "scale_shift":
        b, a = raw.chunk(2, dim=1)
        return a, b
    if order == "interleaved":
        return raw[:, 0::2], raw[:, 1::2]
    raise ConfigError(f"network output order must be one of {NETWORK_OUTPUTS}, got {order!r}")


def network_channels(kind: str, transformed_channels: int) -> int:
    """Output channels the network needs: ``2 * C_a`` (shift, scale) for affine, ``C_a`` else."""
    kinds = GlowConfig.choices("coupling")
    if kind not in kinds:
        raise ConfigError(f"coupling must be one of {kinds}, got {kind!r}")
    return 2 * transformed_channels if kind == "affine" else transformed_channels


class _Coupling(Bijector):
    """Shared transform of the coupling layers; subclasses choose the split.

    ``y = couple(x, NN(condition(x)))``: :meth:`condition` is the part of the input that passes
    unchanged (so ``condition(y) == condition(x)`` and the inverse reads the same network
    output), :meth:`couple` the map given the network's output. :meth:`rebuild` uses this split
    to evaluate the network once when the invertible memory mode rebuilds an input.
    """

    def __init__(
        self,
        network: nn.Module,
        kind: str,
        scale_fn: str,
        output: str = "shift_scale",
        shift: str = "after_scale",
        context_channels: int = 0,
    ) -> None:
        super().__init__()
        network_channels(kind, 1)  # validates kind
        if scale_fn not in SCALE_FUNCTIONS:
            raise ConfigError(f"scale_fn must be one of {tuple(SCALE_FUNCTIONS)}, got {scale_fn!r}")
        if output not in NETWORK_OUTPUTS:
            raise ConfigError(f"output must be one of {NETWORK_OUTPUTS}, got {output!r}")
        if shift not in SHIFT_ORDERS:
            raise ConfigError(f"shift must be one of {SHIFT_ORDERS}, got {shift!r}")
        self.network = network
        self.kind = kind
        self.scale_fn = scale_fn
        self.output = output
        self.shift = shift
        self.context_channels = context_channels

    def shift_and_log_scale(
        self, condition: Tensor, context: Optional[Tensor] = None
    ) -> tuple[Tensor, Optional[Tensor]]:
        """The network's output on ``condition`` -- with ``context_channels > 0``, on
        ``cat([condition, context])``, the context a ``(B, context_channels, H, W)`` feature map
        -- as shift ``t`` and ``log s`` (``None``: additive). Otherwise the context is ignored
        (a Glow passes class labels to every layer; only its prior reads them). The network
        may run in lower precision (autocast); its output is cast to ``condition``'s dtype
        first, so ``t``, ``log s`` and all that follows are float32."""
        if self.context_channels:
            if context is None or context.dim() != 4 or context.shape[1] != self.context_channels:
                got = None if context is None else tuple(context.shape)
                raise ConfigError(
                    f"{type(self).__name__} needs a (B, {self.context_channels}, H, "
                    f"W) context, got {got}"
                )
            condition = torch.cat([condition, context.to(condition.dtype)], dim=1)
        raw = self.network(condition).to(condition.dtype)  # bf16/fp16 under autocast
        if self.kind == "additive":
            return raw, None
        shift, scale_raw = split_output(raw, self.output)
        return shift, SCALE_FUNCTIONS[self.scale_fn](scale_raw)

    def affine(self, x: Tensor, shift: Tensor, log_scale: Tensor, inverse: bool) -> Tensor:
        """The affine update of the transformed entries: ``x * s + t`` (inverse
        ``(x - t) / s``) or, shifting before scaling, ``(x + t) * s`` (inverse ``x / s - t``)."""
        if self.shift == "after_scale":
            return (x - shift) * (-log_scale).exp() if inverse else x * log_scale.exp() + shift
        return x * (-log_scale).exp() - shift if inverse else (x + shift) * log_scale.exp()

    def condition(self, x: Tensor) -> Tensor:
        """The network's input: the part of ``x`` the coupling leaves unchanged."""
        raise NotImplementedError

    def couple(
        self, x: Tensor, shift: Tensor, log_scale: Optional[Tensor], inverse: bool = False
    ) -> tuple[Tensor, Tensor]:
        """The forward (or inverse) map of ``x`` and its log-det, given the network's output."""
        raise NotImplementedError

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return self.couple(x, *self.shift_and_log_scale(self.condition(x), context))

    def rebuild(self, y: Tensor, context: Optional[Tensor] = None) -> Rebuilt:
        """One network pass serves the inverse and the recomputed forward: the network reads
        ``condition(y) == condition(x)``, a leaf linked to ``condition(x)``."""
        with torch.enable_grad():
            condition = self.condition(y).detach().requires_grad_()
            shift, log_scale = self.shift_and_log_scale(condition, context)
        with torch.no_grad():
            x, _ = self.couple(y, shift, log_scale, inverse=True)
        x = x.detach().requires_grad_()
        with torch.enable_grad():
            output, logdet = self.couple(x, shift, log_scale)
            link = self.condition(x)
        return Rebuilt(x, output, logdet, ((condition, link),))

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return self.couple(y, *self.shift_and_log_scale(self.condition(y), context), inverse=True)

    def extra_repr(self) -> str:
        return (
            f"kind={self.kind!r}, scale_fn={self.scale_fn!r}, output={self.output!r}, "
            f"shift={self.shift!r}"
        )


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
        output: str = "shift_scale",
        shift: str = "after_scale",
        context_channels: int = 0,
    ) -> None:
        super().__init__(network, kind, scale_fn, output, shift, context_channels)
        num_transformed = num_channels // 2 if num_transformed is None else num_transformed
        if not 0 < num_transformed < num_channels:
            raise ConfigError(
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
        out = self.affine(transformed, shift, log_scale, inverse)
        logdet = sum_except_batch(log_scale)
        return torch.cat([condition, out], dim=1), -logdet if inverse else logdet

    def forward_shape(self, shape: Shape) -> Shape:
        return check_channels(self, shape, self.num_channels)

    inverse_shape = forward_shape


class CheckerboardCoupling(_Coupling):
    """RealNVP's checkerboard coupling: pixels with ``(i + j) % 2 == parity`` condition the
    others, across all channels.

    With ``m`` the ``(1, 1, H, W)`` 0/1 mask of conditioning pixels, ``network`` maps the
    masked input ``(B, C, H, W)`` (with ``context_channels``, the masked input and the context
    concatenated) to ``(B, 2C, H, W)`` (affine) or ``(B, C, H, W)``:

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
        output: str = "shift_scale",
        shift: str = "after_scale",
        context_channels: int = 0,
    ) -> None:
        super().__init__(network, kind, scale_fn, output, shift, context_channels)
        if len(event_shape) != 3:
            raise ConfigError(f"CheckerboardCoupling needs a (C, H, W) shape, got {event_shape}")
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
        logdet = sum_except_batch(log_scale)
        return self.affine(x, shift, log_scale, inverse), -logdet if inverse else logdet

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, parity={self.parity}"
