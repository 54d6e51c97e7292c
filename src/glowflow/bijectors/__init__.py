"""Invertible layers with exact log-determinants (forward = data -> latent)."""

from .actnorm import ActNorm
from .base import Bijector, Inverse
from .chain import Chain
from .coupling import ChannelCoupling, CheckerboardCoupling
from .exit import Exit
from .invconv import InvertibleConv1x1, InvertibleConv1x1LU
from .networks import ZeroConv2d, glow_network
from .permutation import ChannelPermutation
from .prior import ClassConditionalPrior, LearnedPrior
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
    "InvertibleConv1x1",
    "InvertibleConv1x1LU",
    "LearnedPrior",
    "Squeeze",
    "ZeroConv2d",
    "glow_network",
]
