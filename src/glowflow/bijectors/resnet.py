"""RealNVP's coupling network: a residual network with a bounded log-scale head (Dinh et al.
2017, sections 3.6 and 4.1)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ..errors import ConfigError

NORMALIZATIONS = ("batch", "weight")
"""Normalization inside the residual network: ``nn.BatchNorm2d`` layers, or weight-normalized
convolutions."""


class TanhLogScale(nn.Module):
    """The head of RealNVP's coupling network: ``(B, 2C, H, W) = [t, h] -> [t, c * tanh(h)]``
    with a learned per-channel ``c`` (``(C, 1, 1)``, starting at 1).

    Its output is ``[shift, log s]`` for a coupling with ``scale_fn="exp"``, so the scale is
    ``s = exp(c * tanh(h))``, bounded by ``exp(+-|c|)``.
    """

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(num_channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        shift, raw = x.chunk(2, dim=1)
        return torch.cat([shift, self.scale.to(raw.dtype) * torch.tanh(raw)], dim=1)


def _conv(in_channels: int, out_channels: int, normalization: str) -> nn.Module:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
    return weight_norm(conv) if normalization == "weight" else conv


def _norm(channels: int, normalization: str) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels)] if normalization == "batch" else []


class ResidualBlock(nn.Module):
    """``x + conv(relu(norm(conv(relu(norm(x))))))`` with 3x3 convolutions of ``channels``
    features (pre-activation), ``(B, C, H, W) -> (B, C, H, W)``."""

    def __init__(self, channels: int, normalization: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_norm(channels, normalization),
            nn.ReLU(),
            _conv(channels, channels, normalization),
            *_norm(channels, normalization),
            nn.ReLU(),
            _conv(channels, channels, normalization),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def resnet_network(
    in_channels: int,
    transformed_channels: int,
    hidden_channels: int = 64,
    num_res_blocks: int = 4,
    normalization: str = "batch",
) -> nn.Sequential:
    """RealNVP's affine coupling network: conv3x3 -> ``num_res_blocks`` x
    :class:`ResidualBlock` -> norm -> ReLU -> conv3x3 -> :class:`TanhLogScale`.

    Shapes: ``(B, in_channels, H, W) -> (B, 2 C_a, H, W)``, the shift ``t`` then
    ``log s = c * tanh(h)`` of the ``C_a = transformed_channels`` transformed channels (for a
    coupling with ``scale_fn="exp"``). ``normalization="batch"`` puts ``nn.BatchNorm2d``
    before each ReLU; ``"weight"`` weight-normalizes every convolution instead (Salimans &
    Kingma 2016), so the network treats each example on its own even in training. The last
    convolution starts at zero (with weight normalization: its gain ``g`` does), so the
    coupling starts as the identity. In training mode the batch-normalized network depends on
    the batch; in eval mode (running statistics) the coupling is an exact bijection.
    """
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if min(in_channels, transformed_channels, hidden_channels, num_res_blocks) < 1:
        raise ConfigError(
            f"resnet_network needs positive sizes, got in_channels={in_channels}, "
            f"transformed_channels={transformed_channels}, hidden_channels={hidden_channels}, "
            f"num_res_blocks={num_res_blocks}"
        )
    last = _conv(hidden_channels, 2 * transformed_channels, normalization)
    with torch.no_grad():
        if normalization == "weight":
            last.parametrizations.weight.original0.zero_()  # g = 0: w = 0, v stays random
        else:
            last.weight.zero_()
        last.bias.zero_()
    return nn.Sequential(
        _conv(in_channels, hidden_channels, normalization),
        *(ResidualBlock(hidden_channels, normalization) for _ in range(num_res_blocks)),
        *_norm(hidden_channels, normalization),
        nn.ReLU(),
        last,
        TanhLogScale(transformed_channels),
    )
