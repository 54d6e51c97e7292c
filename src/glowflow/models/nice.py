"""NICE (Dinh, Krueger & Bengio 2015): additive couplings and a final diagonal scaling."""

from __future__ import annotations

import math
from typing import Optional, Sequence

from torch import nn

from ..bijectors.base import Bijector
from ..bijectors.chain import Chain
from ..bijectors.coupling import CheckerboardCoupling
from ..bijectors.mlp import mlp_network
from ..bijectors.scaling import NICEScaling
from ..flow import Flow
from ..seeding import seeded
from .stacks import mlp_coupling_stack


def nice(
    event_shape: Sequence[int],
    num_layers: int = 4,
    hidden: int = 1000,
    num_hidden_layers: int = 5,
    *,
    seed: Optional[int] = None,
) -> Flow:
    """A NICE model: ``num_layers`` additive couplings with MLP networks, then
    :class:`~glowflow.bijectors.scaling.NICEScaling`; base ``N(0, I)``.

    NICE treats its input as one vector, so every coupling's network is an MLP over all
    ``D = prod(event_shape)`` entries, and successive couplings swap the halves:

    * ``event_shape = (D,)``: each coupling conditions one half of the vector on the other,
      the order reversed between couplings (see :func:`.stacks.mlp_coupling_stack`);
    * ``event_shape = (C, H, W)``: checkerboard couplings whose parity alternates (pixels with
      ``(i + j)`` even condition the odd ones, then the other way round), the MLP reading the
      flattened masked image. Latents keep the image shape.

    Forward ``z = S(f_L(... f_1(x)))`` with ``f_k`` volume preserving, so
    ``log p(x) = log N(z; 0, I) + sum(s)``. Defaults are the paper's MNIST model: 4 couplings,
    5 hidden layers of 1000 ReLU units. Couplings and scaling start as the identity.
    Reference: L. Dinh, D. Krueger, Y. Bengio, NICE: Non-linear Independent Components
    Estimation, arXiv:1410.8516.
    """
    shape = tuple(int(s) for s in event_shape)
    with seeded(seed):
        if len(shape) == 1:
            layers = mlp_coupling_stack(shape[0], num_layers, "additive", hidden, num_hidden_layers)
        elif len(shape) == 3:
            layers = [
                _checkerboard(shape, k % 2, hidden, num_hidden_layers) for k in range(num_layers)
            ]
        else:
            raise ValueError(f"nice: event_shape must be (D,) or (C, H, W), got {shape}")
        return Flow(Chain(*layers, NICEScaling(shape), event_shape=shape))


def _checkerboard(
    shape: tuple[int, ...], parity: int, hidden: int, num_hidden_layers: int
) -> Bijector:
    """An additive checkerboard coupling whose network is an MLP over the flattened image."""
    dim = math.prod(shape)
    network = nn.Sequential(
        nn.Flatten(), mlp_network(dim, dim, hidden, num_hidden_layers), nn.Unflatten(1, shape)
    )
    return CheckerboardCoupling(shape, network, "additive", parity=parity)
