"""Networks that parameterize couplings and exits, and the checks on user-supplied ones."""

from __future__ import annotations

import inspect
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import GlowConfig
from ..errors import ConfigError
from .actnorm import ActNorm
from .base import Bijector, Shape

NetworkFn = Callable[..., Union[nn.Module, Bijector]]

ZERO_CONV_PADDINGS: tuple[str, ...] = GlowConfig.choices("zero_conv_padding") or ()
"""Borders of a :class:`ZeroConv2d` (``GlowConfig.zero_conv_padding``)."""

HIDDEN_LAYERS: tuple[str, ...] = GlowConfig.choices("coupling_network") or ()
"""Hidden layers of :func:`glow_network` (``GlowConfig.coupling_network``)."""


class ZeroConv2d(nn.Module):
    """A 3x3 convolution initialized to output zeros, with a learned per-channel output gain.

    ``out = conv(pad(x)) * exp(gain_scale * log_gain)``; weight, bias and ``log_gain`` all
    start at zero, so a coupling or prior it feeds starts as the identity (Glow's
    ``Conv2dZeros``). ``padding="zeros"`` pads the border with 0 (the convolution's own
    padding), ``"ones"`` with 1 (rosinality's port). Shapes: ``(B, C_in, H, W) ->
    (B, C_out, H, W)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, gain_scale: float = 3.0, padding: str = "zeros"
    ) -> None:
        super().__init__()
        if padding not in ZERO_CONV_PADDINGS:
            raise ConfigError(
                f"ZeroConv2d padding must be one of {ZERO_CONV_PADDINGS}, got {padding!r}"
            )
        self.pad_with_ones = padding == "ones"
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size=3, padding=0 if self.pad_with_ones else 1
        )
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.log_gain = nn.Parameter(torch.zeros(out_channels, 1, 1))
        self.gain_scale = gain_scale

    def forward(self, x: Tensor) -> Tensor:
        if self.pad_with_ones:
            x = F.pad(x, [1, 1, 1, 1], value=1.0)
        return self.conv(x) * torch.exp(self.log_gain * self.gain_scale)


class HiddenActNorm(nn.Module):
    """An :class:`~glowflow.bijectors.actnorm.ActNorm` on a network's hidden activations:
    ``y = (x + b) * exp(s)`` per channel, data-initialized like the flow's own; its log-det is
    no part of the flow's. ``(B, C, H, W) -> (B, C, H, W)``."""

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.actnorm = ActNorm(num_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.actnorm(x)[0]


def glow_network(
    in_channels: int,
    out_channels: int,
    hidden_channels: int = 512,
    dropout: float = 0.0,
    hidden: str = "glow",
    padding: str = "zeros",
) -> nn.Module:
    """Glow's coupling network ``NN()``: conv3x3 -> ReLU -> conv1x1 -> ReLU -> zero conv3x3.

    Shapes: ``(B, in_channels, H, W) -> (B, out_channels, H, W)``. The last layer is a
    :class:`ZeroConv2d` (border ``padding``), so the coupling it drives starts as the
    identity. ``hidden="glow_actnorm"`` makes the two hidden convolutions bias-free, each
    followed by a :class:`HiddenActNorm` (the official code's ``conv2d`` with actnorm).
    ``dropout > 0`` adds channel dropout (``nn.Dropout2d``) after each ReLU, in the ReLU's
    place of the sequence (neither has weights), so the state-dict keys are the same with and
    without it and a model trained one way loads the other; it acts in training mode only, so
    encoding and decoding in eval mode stay exact inverses.
    """
    if hidden not in HIDDEN_LAYERS:
        raise ConfigError(f"coupling network must be one of {HIDDEN_LAYERS}, got {hidden!r}")
    actnorm = hidden == "glow_actnorm"

    def convolution(channels_in: int, kernel_size: int) -> list[nn.Module]:
        conv = nn.Conv2d(
            channels_in,
            hidden_channels,
            kernel_size=kernel_size,
            padding=kernel_size // 2,
            bias=not actnorm,
        )
        return [conv, HiddenActNorm(hidden_channels)] if actnorm else [conv]

    def activation() -> list[nn.Module]:
        return [nn.Sequential(nn.ReLU(), nn.Dropout2d(dropout)) if dropout else nn.ReLU()]

    return nn.Sequential(
        *convolution(in_channels, 3),
        *activation(),
        *convolution(hidden_channels, 1),
        *activation(),
        ZeroConv2d(hidden_channels, out_channels, padding=padding),
    )


def _required_positional(fn: Callable[..., object]) -> int:
    """How many positional parameters ``fn`` requires (2 for ``*args``); parameters with
    defaults do not count, so they keep their defaults (TFP's ``fn(input_shape, num_hidden=400)``
    gets the shape alone)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return 2
    return sum(1 for p in parameters if p.kind in kinds and p.default is inspect.Parameter.empty)


def _shape_probe(network: nn.Module, shape: tuple[int, ...]) -> object:
    """Run ``network`` on zeros of ``shape`` to learn its output shape.

    The run happens on the ``meta`` device (shapes only, no arithmetic), so checking even the
    paper's 512-wide networks costs nothing; a network with an operation that has no meta
    kernel is run for real instead.
    """
    probe = next(network.parameters(), None)
    dtype = probe.dtype if probe is not None else torch.float32
    state = {name: t.to("meta") for name, t in network.state_dict(keep_vars=True).items()}
    with torch.no_grad():
        try:
            return torch.func.functional_call(
                network, state, (torch.zeros(shape, dtype=dtype, device="meta"),)
            )
        except (NotImplementedError, RuntimeError):
            return network(torch.zeros(shape, dtype=dtype))


def _call_network_fn(
    fn: NetworkFn, input_shape: Shape, output_channels: int, what: str
) -> Union[nn.Module, Bijector]:
    """``fn(input_shape)`` or, when it requires two positional parameters,
    ``fn(input_shape, output_channels)``; anything but a module is a ``ValueError``."""
    args = (tuple(input_shape), output_channels)[: 2 if _required_positional(fn) >= 2 else 1]
    result = fn(*args)
    if not isinstance(result, nn.Module):
        raise ConfigError(
            f"{what} must return an nn.Module or a Bijector, got {type(result).__name__}"
        )
    return result


def _output_channels(network: nn.Module, input_shape: Shape, what: str) -> int:
    """The channel count ``network`` gives for ``(1, *input_shape)``; it must keep ``H, W``."""
    try:
        output = _shape_probe(network, (1, *input_shape))
    except Exception as error:  # noqa: BLE001 - re-raised with the layer named
        raise ConfigError(
            f"{what}: the network failed on input shape {(1, *input_shape)}: {error}"
        ) from error
    if (
        not isinstance(output, Tensor)
        or output.dim() != 4
        or tuple(output.shape[2:]) != tuple(input_shape[1:])
    ):
        got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ConfigError(
            f"{what}: the network must map input shape {(1, *input_shape)} to "
            f"(1, channels, {input_shape[1]}, {input_shape[2]}), got {got}"
        )
    return int(output.shape[1])


def build_network(
    fn: NetworkFn, input_shape: Shape, output_channels: int, expected_channels: int, what: str
) -> Union[nn.Module, Bijector]:
    """Call a user's network function and check what it returns.

    ``fn`` is called as in :func:`_call_network_fn`. A returned :class:`Bijector` is passed
    through unchanged (the caller uses it as the layer itself). A returned ``nn.Module`` is run
    once on zeros of shape ``(1, *input_shape)`` (on the meta device) and must give
    ``(1, expected_channels, H, W)``. Anything else is a ``ValueError`` that names ``what``.
    """
    network = _call_network_fn(fn, input_shape, output_channels, what)
    if isinstance(network, Bijector):
        return network
    channels = _output_channels(network, input_shape, what)
    if channels != expected_channels:
        raise ConfigError(
            f"{what}: the network must map input shape {(1, *input_shape)} to "
            f"{(1, expected_channels, *input_shape[1:])} ({expected_channels} channels), got "
            f"{channels} channels"
        )
    return network


def build_coupling_network(
    fn: NetworkFn, input_shape: Shape, transformed_channels: int, kind: Optional[str], what: str
) -> tuple[Union[nn.Module, Bijector], str]:
    """A coupling's network from a user's function, and the coupling kind.

    With ``kind=None`` the network's output decides, as in TFP: ``C_a`` channels (as many as
    the transformed part) means ``"additive"``, ``2 C_a`` means ``"affine"``. With a given kind
    the output must match it. A returned :class:`Bijector` is the coupling itself (kind
    ``"bijector"``).
    """
    network = _call_network_fn(fn, input_shape, transformed_channels, what)
    if isinstance(network, Bijector):
        return network, "bijector"
    channels = _output_channels(network, input_shape, what)
    kinds = {2 * transformed_channels: "affine", transformed_channels: "additive"}
    found = kinds.get(channels)
    if found is None or (kind is not None and found != kind):
        wanted = {"affine": 2 * transformed_channels, "additive": transformed_channels}
        expected = (
            f"{wanted[kind]} ({kind})"
            if kind is not None
            else f"{transformed_channels} (additive) or {2 * transformed_channels} (affine)"
        )
        raise ConfigError(
            f"{what}: the network must map input shape {(1, *input_shape)} to {expected} "
            f"channels at {input_shape[1]}x{input_shape[2]}, got {channels} channels"
        )
    return network, found
