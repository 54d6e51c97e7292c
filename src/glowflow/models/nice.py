"""NICE (Dinh, Krueger & Bengio 2015): additive couplings and a final diagonal scaling."""

from __future__ import annotations

from typing import Optional

from ..bijectors.chain import Chain
from ..bijectors.logistic import LogisticToNormal
from ..bijectors.mlp import mlp_network
from ..bijectors.parity import ParityCoupling
from ..bijectors.scaling import NICEScaling
from ..errors import ConfigError
from ..flow import Flow
from ..seeding import seeded
from .stacks import ShapeOrDim, vector_input

PRIORS = ("gaussian", "logistic")
"""NICE's prior on its output ``z``: standard normal, or the paper's standard logistic."""


def nice(
    event_shape: ShapeOrDim,
    num_layers: int = 4,
    hidden: int = 1000,
    num_hidden_layers: int = 5,
    *,
    prior: str = "gaussian",
    seed: Optional[int] = None,
) -> Flow:
    """A NICE model: ``num_layers`` additive couplings with MLP networks, then
    :class:`~glowflow.bijectors.scaling.NICEScaling`.

    NICE treats its input as one vector: an image ``(C, H, W)`` is flattened first (the
    flow's event shape stays the image's, so it samples images; the latent is ``(D,)`` with
    ``D = C*H*W``). Coupling ``k`` is a
    :class:`~glowflow.bijectors.parity.ParityCoupling`, ``y_a = x_a + m(x_b)``, where the
    paper's partition alternates: for even ``k`` the even-indexed entries ``x_b`` condition
    the odd ones, for odd ``k`` the other way round; ``m`` is an MLP of ``num_hidden_layers``
    ReLU layers of ``hidden`` units.

    ``z = S(f_L(... f_1(x)))`` with ``f_k`` volume preserving and ``S = diag(exp(s))``, so
    ``log p(x) = log p_prior(z) + sum(s)``. ``prior="gaussian"`` takes ``z`` as the latent
    under glowflow's ``N(0, I)`` base; ``prior="logistic"`` (the paper's, for its image
    experiments) appends :class:`~glowflow.bijectors.logistic.LogisticToNormal`, so that
    ``log p(x) = sum_i log logistic(z_i) + sum(s)`` exactly. Defaults are the paper's MNIST
    model: 4 couplings, 5 hidden layers of 1000 ReLU units. Couplings and scaling start as the
    identity.
    Reference: L. Dinh, D. Krueger, Y. Bengio, NICE: Non-linear Independent Components
    Estimation, arXiv:1410.8516.
    """
    shape, dim, layers = vector_input(event_shape, "nice")
    if prior not in PRIORS:
        raise ConfigError(f"nice: prior must be one of {PRIORS}, got {prior!r}")
    if num_layers < 1:
        raise ConfigError(f"nice: num_layers must be >= 1, got {num_layers}")
    if dim < 2:
        raise ConfigError(f"nice: a coupling needs dim >= 2 to split, got dim={dim}")
    with seeded(seed):
        for k in range(num_layers):
            parity = k % 2
            conditioning = len(range(parity, dim, 2))
            network = mlp_network(conditioning, dim - conditioning, hidden, num_hidden_layers)
            layers.append(ParityCoupling(dim, network, "additive", parity=parity))
        layers.append(NICEScaling((dim,)))
        if prior == "logistic":
            layers.append(LogisticToNormal())
        return Flow(Chain(*layers, event_shape=shape))
