"""Invertible layers with exact log-determinants (forward = data -> latent)."""

from .actnorm import ActNorm
from .autoregressive import MADE, InverseAutoregressive, MaskedAutoregressive, MaskedLinear
from .base import Bijector, Inverse
from .batchnorm import BatchNormBijector
from .causal_affine import CausalAffine
from .chain import Chain
from .constant_scale import ConstantScale
from .coupling import ChannelCoupling, CheckerboardCoupling
from .exit import Exit
from .invconv import InvertibleConv1x1, InvertibleConv1x1LU
from .jet_coupling import JetCoupling
from .logistic import LogisticToNormal
from .mlp import mlp_network
from .networks import ZeroConv2d, glow_network
from .parity import ParityCoupling
from .patchify import Patchify
from .permutation import ChannelPermutation
from .prior import ClassConditionalPrior, LearnedPrior
from .realnvp_multiscale import RealNVPMultiScale
from .reshape import Reshape
from .resnet import resnet_network
from .scaling import NICEScaling
from .squeeze import Squeeze

__all__ = [
    "ActNorm",
    "BatchNormBijector",
    "Bijector",
    "CausalAffine",
    "Chain",
    "ChannelCoupling",
    "ChannelPermutation",
    "CheckerboardCoupling",
    "ClassConditionalPrior",
    "ConstantScale",
    "Exit",
    "Inverse",
    "InverseAutoregressive",
    "InvertibleConv1x1",
    "InvertibleConv1x1LU",
    "JetCoupling",
    "LearnedPrior",
    "LogisticToNormal",
    "MADE",
    "MaskedAutoregressive",
    "MaskedLinear",
    "NICEScaling",
    "ParityCoupling",
    "Patchify",
    "RealNVPMultiScale",
    "Reshape",
    "Squeeze",
    "ZeroConv2d",
    "glow_network",
    "mlp_network",
    "resnet_network",
]
