"""A fully connected network for couplings on flat vectors (NICE, tabular RealNVP)."""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError


def mlp_network(
    in_features: int, out_features: int, hidden: int = 64, num_hidden_layers: int = 2
) -> nn.Sequential:
    """``num_hidden_layers`` x (Linear -> ReLU) of width ``hidden``, then a zero Linear.

    Shapes: ``(B, in_features) -> (B, out_features)``. The last layer's weight and bias start
    at zero, so a coupling it drives starts as the identity (the MLP counterpart of
    :func:`~glowflow.bijectors.networks.glow_network`).
    """
    if min(in_features, out_features, hidden) < 1 or num_hidden_layers < 0:
        raise ConfigError(
            f"mlp_network needs positive sizes and num_hidden_layers >= 0, got in_features="
            f"{in_features}, out_features={out_features}, hidden={hidden}, "
            f"num_hidden_layers={num_hidden_layers}"
        )
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(num_hidden_layers):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    last = nn.Linear(width, out_features)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)
