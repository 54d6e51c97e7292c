"""MAF (Papamakarios et al. 2017): a stack of masked autoregressive layers."""

from __future__ import annotations

from typing import Optional

from ..bijectors.autoregressive import MaskedAutoregressive
from ..flow import Flow
from .stacks import ShapeOrDim, autoregressive_flow


def maf(
    event_shape_or_dim: ShapeOrDim,
    num_layers: int = 5,
    hidden: int = 64,
    num_hidden_layers: int = 2,
    *,
    context_features: Optional[int] = None,
    scale_fn: str = "exp",
    batch_norm_layers: bool = False,
    use_actnorm: bool = False,
    seed: Optional[int] = None,
) -> Flow:
    """A masked autoregressive flow on ``D`` dimensions: ``num_layers`` x
    :class:`~glowflow.bijectors.autoregressive.MaskedAutoregressive`, the order of the entries
    reversed between layers.

    Layer ``k`` maps ``z_i = x_i * s_i + t_i`` with ``(t_i, log s_i)`` from a MADE over
    ``x_{<i}`` (``hidden`` units, ``num_hidden_layers`` layers); the paper's
    ``z_i = (x_i - mu_i) exp(-alpha_i)``. ``event_shape_or_dim`` is ``D``, ``(D,)`` or an
    image shape ``(C, H, W)``, which the flow flattens first (``D = C*H*W``; samples are
    images, the latent is ``(D,)``). Options: ``batch_norm_layers`` puts a
    :class:`~glowflow.bijectors.batchnorm.BatchNormBijector` after every layer (the paper's
    batch normalization; batch statistics in training, running ones in eval, so call
    ``eval()`` before sampling), ``use_actnorm`` an ActNorm before every layer,
    ``scale_fn="sigmoid"`` bounds the scales.

    ``log_prob`` is one MADE pass per layer; ``sample`` is ``D`` passes per layer. With
    ``context_features=K`` the flow is conditional: pass the ``(B, K)`` context as ``y`` to
    :meth:`Flow.log_prob` and :meth:`Flow.sample`. Starts as the identity (``scale_fn="exp"``,
    no batch normalization).
    Reference: G. Papamakarios, T. Pavlakou, I. Murray, Masked Autoregressive Flow for Density
    Estimation, NeurIPS 2017, arXiv:1705.07057.
    """
    return autoregressive_flow(
        MaskedAutoregressive,
        event_shape_or_dim,
        num_layers,
        hidden,
        num_hidden_layers,
        context_features,
        scale_fn,
        use_actnorm,
        batch_norm_layers,
        seed,
        "maf",
    )
