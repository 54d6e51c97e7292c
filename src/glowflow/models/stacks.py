"""Shared plumbing of the model builders: vector flows, on vectors or flattened images."""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Union

from ..bijectors.actnorm import ActNorm
from ..bijectors.base import Bijector, Shape
from ..bijectors.batchnorm import BatchNormBijector
from ..bijectors.chain import Chain
from ..bijectors.coupling import ChannelCoupling, network_channels
from ..bijectors.mlp import mlp_network
from ..bijectors.permutation import ChannelPermutation
from ..bijectors.reshape import Reshape
from ..errors import ConfigError
from ..flow import Flow
from ..seeding import seeded

ShapeOrDim = Union[int, Sequence[int]]
"""A vector size ``D``, or an event shape ``(D,)`` or ``(C, H, W)``."""


def vector_input(event_shape_or_dim: ShapeOrDim, builder: str) -> tuple[Shape, int, list[Bijector]]:
    """``(event_shape, D, layers)`` for a flow on vectors of ``event_shape_or_dim``.

    ``D`` or ``(D,)`` gives ``((D,), D, [])``; an image shape ``(C, H, W)`` gives
    ``((C, H, W), C*H*W, [Reshape.flatten])``: the flow starts by flattening the image
    (log-det 0) and its event shape stays the image's, so it samples images. Any other shape
    is a :class:`~glowflow.errors.ConfigError` naming ``builder``.
    """
    if isinstance(event_shape_or_dim, int):
        shape: Shape = (event_shape_or_dim,)
    else:
        shape = tuple(int(s) for s in event_shape_or_dim)
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise ConfigError(
            f"{builder}: event_shape must be an int D, (D,) or (C, H, W), got {shape}"
        )
    if len(shape) == 1:
        return shape, shape[0], []
    return shape, math.prod(shape), [Reshape.flatten(shape)]


def alternating_stack(
    dim: int,
    num_layers: int,
    make_layer: Callable[[int], Bijector],
    use_actnorm: bool,
    batch_norm_layers: bool = False,
) -> list[Bijector]:
    """``num_layers`` x [ActNorm (optional) -> reverse (all but the first) -> layer ``k`` ->
    batch normalization (optional, a :class:`~glowflow.bijectors.batchnorm.BatchNormBijector`
    per entry)].

    Reversing the order of the ``dim`` entries between layers lets every entry condition on
    and be transformed by the others (RealNVP, MAF, IAF). ``make_layer(k)`` builds layer ``k``.
    """
    if num_layers < 1:
        raise ConfigError(f"num_layers must be >= 1, got {num_layers}")
    layers: list[Bijector] = []
    for k in range(num_layers):
        if use_actnorm:
            layers.append(ActNorm(dim))
        if k:
            layers.append(ChannelPermutation.reverse(dim))
        layers.append(make_layer(k))
        if batch_norm_layers:
            layers.append(BatchNormBijector(dim))
    return layers


def mlp_coupling_stack(
    dim: int,
    num_layers: int,
    kind: str,
    hidden: int,
    num_hidden_layers: int,
    scale_fn: str = "exp",
    use_actnorm: bool = False,
) -> list[Bijector]:
    """Couplings with MLP networks on ``(B, dim)``, between reversals (:func:`alternating_stack`).

    Layer ``k`` transforms the last ``dim // 2`` entries for even ``k`` and the last
    ``dim - dim // 2`` for odd ``k``, so with the reversals every entry is transformed (also
    for odd ``dim``) -- the alternating masks of tabular RealNVP.
    """
    if dim < 2:
        raise ConfigError(f"a coupling needs dim >= 2 to split, got dim={dim}")

    def coupling(k: int) -> Bijector:
        transformed = dim // 2 if k % 2 == 0 else dim - dim // 2
        network = mlp_network(
            dim - transformed, network_channels(kind, transformed), hidden, num_hidden_layers
        )
        return ChannelCoupling(dim, network, kind, scale_fn, transformed)

    return alternating_stack(dim, num_layers, coupling, use_actnorm)


def autoregressive_flow(
    layer_class: type,
    event_shape_or_dim: ShapeOrDim,
    num_layers: int,
    hidden: int,
    num_hidden_layers: int,
    context_features: Optional[int],
    scale_fn: str,
    use_actnorm: bool,
    batch_norm_layers: bool,
    seed: Optional[int],
    builder: str,
) -> Flow:
    """A :class:`Flow` of ``num_layers`` autoregressive layers of ``layer_class`` (MAF's or
    IAF's) on ``(B, D)`` -- the flattened image for an image shape (:func:`vector_input`) --
    between reversals (:func:`alternating_stack`); ``builder`` names it in errors."""
    shape, dim, layers = vector_input(event_shape_or_dim, builder)
    with seeded(seed):
        layers += alternating_stack(
            dim,
            num_layers,
            lambda k: layer_class(dim, hidden, num_hidden_layers, context_features, scale_fn),
            use_actnorm,
            batch_norm_layers,
        )
        return Flow(Chain(*layers, event_shape=shape))
