"""Invertible layers with exact log-determinants (forward = data -> latent)."""

from .actnorm import ActNorm
from .autoregressive import MADE, InverseAutoregressive, MaskedAutoregressive, MaskedLinear
from .base import Bijector, Inverse
from .chain import Chain
from .coupling import ChannelCoupling, CheckerboardCoupling
from .exit import Exit
from .invconv import InvertibleConv1x1, InvertibleConv1x1LU
from .mlp import mlp_network
from .networks import ZeroConv2d, glow_network
from .permutation import ChannelPermutation
from .prior import ClassConditionalPrior, LearnedPrior
from .scaling import NICEScaling
from .squeeze import Squeeze

__all__ = [
    "ActNorm",
    "Bijector",
    "Chain",
    "ChannelCoupling",
    "ChannelPermutation",
    "CheckerboardCoupling",
    "ClassConditionalPrior",
    "Exit",
    "Inverse",
    "InverseAutoregressive",
    "InvertibleConv1x1",
    "InvertibleConv1x1LU",
    "LearnedPrior",
    "MADE",
    "MaskedAutoregressive",
    "MaskedLinear",
    "NICEScaling",
    "Squeeze",
    "ZeroConv2d",
    "glow_network",
    "mlp_network",
]
