"""Shared plumbing of the model builders: layer stacks on flat vectors."""

from __future__ import annotations

from typing import Callable, Optional

from ..bijectors.actnorm import ActNorm
from ..bijectors.base import Bijector
from ..bijectors.chain import Chain
from ..bijectors.coupling import ChannelCoupling, network_channels
from ..bijectors.mlp import mlp_network
from ..bijectors.permutation import ChannelPermutation
from ..flow import Flow
from ..seeding import seeded


def alternating_stack(
    dim: int, num_layers: int, make_layer: Callable[[int], Bijector], use_actnorm: bool
) -> list[Bijector]:
    """``num_layers`` x [ActNorm (optional) -> reverse (all but the first) -> layer ``k``].

    Reversing the order of the ``dim`` entries between layers lets every entry condition on
    and be transformed by the others (NICE, RealNVP, MAF). ``make_layer(k)`` builds layer ``k``.
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    layers: list[Bijector] = []
    for k in range(num_layers):
        if use_actnorm:
            layers.append(ActNorm(dim))
        if k:
            layers.append(ChannelPermutation.reverse(dim))
        layers.append(make_layer(k))
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
    for odd ``dim``) -- the alternating masks of NICE and RealNVP.
    """
    if dim < 2:
        raise ValueError(f"a coupling needs dim >= 2 to split, got dim={dim}")

    def coupling(k: int) -> Bijector:
        transformed = dim // 2 if k % 2 == 0 else dim - dim // 2
        network = mlp_network(
            dim - transformed, network_channels(kind, transformed), hidden, num_hidden_layers
        )
        return ChannelCoupling(dim, network, kind, scale_fn, transformed)

    return alternating_stack(dim, num_layers, coupling, use_actnorm)


def autoregressive_flow(
    layer_class: type,
    dim: int,
    num_layers: int,
    hidden: int,
    num_hidden_layers: int,
    context_features: Optional[int],
    scale_fn: str,
    use_actnorm: bool,
    seed: Optional[int],
) -> Flow:
    """A :class:`Flow` of ``num_layers`` autoregressive layers of ``layer_class`` (MAF's or
    IAF's) on ``(B, dim)``, between reversals (:func:`alternating_stack`)."""
    with seeded(seed):
        layers = alternating_stack(
            dim,
            num_layers,
            lambda k: layer_class(dim, hidden, num_hidden_layers, context_features, scale_fn),
            use_actnorm,
        )
        return Flow(Chain(*layers, event_shape=(dim,)))
