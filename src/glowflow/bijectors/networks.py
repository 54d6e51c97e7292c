"""Networks that parameterize couplings and exits, and the checks on user-supplied ones."""

from __future__ import annotations

import inspect
from typing import Callable, Union

import torch
from torch import Tensor, nn

from .base import Bijector, Shape

NetworkFn = Callable[..., Union[nn.Module, Bijector]]


class ZeroConv2d(nn.Module):
    """A 3x3 convolution initialized to output zeros, with a learned per-channel output gain.

    ``out = conv(x) * exp(gain_scale * log_gain)``; weight, bias and ``log_gain`` all start at
    zero, so a coupling or prior it feeds starts as the identity (Glow's ``Conv2dZeros``).
    Shapes: ``(B, C_in, H, W) -> (B, C_out, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, gain_scale: float = 3.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.log_gain = nn.Parameter(torch.zeros(out_channels, 1, 1))
        self.gain_scale = gain_scale

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) * torch.exp(self.log_gain * self.gain_scale)


def glow_network(in_channels: int, out_channels: int, hidden_channels: int = 512) -> nn.Module:
    """Glow's coupling network ``NN()``: conv3x3 -> ReLU -> conv1x1 -> ReLU -> zero conv3x3.

    Shapes: ``(B, in_channels, H, W) -> (B, out_channels, H, W)``. The last layer is a
    :class:`ZeroConv2d`, so the coupling it drives starts as the identity.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden_channels, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(hidden_channels, hidden_channels, kernel_size=1),
        nn.ReLU(),
        ZeroConv2d(hidden_channels, out_channels),
    )


def _positional_arity(fn: Callable[..., object]) -> int:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return 2
    return sum(1 for p in parameters if p.kind in kinds)


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


def build_network(
    fn: NetworkFn, input_shape: Shape, output_channels: int, expected_channels: int, what: str
) -> Union[nn.Module, Bijector]:
    """Call a user's network function and check what it returns.

    ``fn`` is called as ``fn(input_shape)`` or, if it takes two positional arguments,
    ``fn(input_shape, output_channels)``. A returned :class:`Bijector` is passed through
    unchanged (the caller uses it as the layer itself). A returned ``nn.Module`` is run once
    on zeros of shape ``(1, *input_shape)`` and must give ``(1, expected_channels, H, W)``.
    Anything else is a ``ValueError`` that names ``what`` (e.g. "coupling_bijector_fn").
    """
    args = (tuple(input_shape), output_channels) if _positional_arity(fn) >= 2 else (
        tuple(input_shape),
    )
    result = fn(*args)
    if isinstance(result, Bijector):
        return result
    if not isinstance(result, nn.Module):
        raise ValueError(
            f"{what} must return an nn.Module or a Bijector, got {type(result).__name__}"
        )
    expected = (1, expected_channels, *input_shape[1:])
    try:
        output = _shape_probe(result, (1, *input_shape))
    except Exception as error:  # noqa: BLE001 - re-raised with the layer named
        raise ValueError(f"{what}: the network failed on input shape {(1, *input_shape)}: {error}")
    if not isinstance(output, Tensor) or tuple(output.shape) != expected:
        got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ValueError(
            f"{what}: the network must map input shape {(1, *input_shape)} to {expected} "
            f"({expected_channels} channels), got {got}"
        )
    return result
