"""IAF (Kingma et al. 2016): a stack of inverse autoregressive layers."""

from __future__ import annotations

from typing import Optional

from ..bijectors.autoregressive import InverseAutoregressive
from ..flow import Flow
from .stacks import ShapeOrDim, autoregressive_flow


def iaf(
    event_shape_or_dim: ShapeOrDim,
    num_layers: int = 5,
    hidden: int = 64,
    num_hidden_layers: int = 2,
    *,
    context_features: Optional[int] = None,
    scale_fn: str = "exp",
    use_actnorm: bool = False,
    seed: Optional[int] = None,
) -> Flow:
    """An inverse autoregressive flow on ``D`` dimensions: ``num_layers`` x
    :class:`~glowflow.bijectors.autoregressive.InverseAutoregressive`, the order of the
    entries reversed between layers, optional ActNorm before each.

    Layer ``k`` samples ``x_i = z_i * s_i + t_i`` with ``(t_i, log s_i)`` from a MADE over the
    *latent* ``z_{<i}``. ``event_shape_or_dim`` is ``D``, ``(D,)`` or an image shape
    ``(C, H, W)``, which the flow flattens first (``D = C*H*W``; samples are images).

    Sampling is one MADE pass per layer, and so is the log-density of the flow's own samples,
    which is what a variational posterior needs: with ``z ~ N(0, I)``,
    ``x, ld = flow.bijector.inverse(z, context)`` gives ``log q(x) = log N(z; 0, I) - ld``.
    The density of given data (``log_prob``, ``encode``, training on data) needs the inverse
    of the sampling map, which is sequential: ``D`` MADE passes per layer (``D * num_layers``
    in all; 3072 per layer on 3x32x32 images). With ``context_features=K`` the flow is
    conditional on a ``(B, K)`` context (e.g. an encoder's features). ``scale_fn="sigmoid"``
    bounds the scales like the paper's gated update. Starts as the identity with
    ``scale_fn="exp"``.
    Reference: D. P. Kingma et al., Improving Variational Inference with Inverse
    Autoregressive Flow, NeurIPS 2016, arXiv:1606.04934.
    """
    return autoregressive_flow(
        InverseAutoregressive,
        event_shape_or_dim,
        num_layers,
        hidden,
        num_hidden_layers,
        context_features,
        scale_fn,
        use_actnorm,
        False,
        seed,
        "iaf",
    )
