"""IAF (Kingma et al. 2016): a stack of inverse autoregressive layers."""

from __future__ import annotations

from typing import Optional

from ..bijectors.autoregressive import InverseAutoregressive
from ..flow import Flow
from .stacks import autoregressive_flow


def iaf(
    dim: int,
    num_layers: int = 5,
    hidden: int = 64,
    num_hidden_layers: int = 2,
    *,
    context_features: Optional[int] = None,
    scale_fn: str = "exp",
    use_actnorm: bool = False,
    seed: Optional[int] = None,
) -> Flow:
    """An inverse autoregressive flow on ``(D,)``: ``num_layers`` x
    :class:`~glowflow.bijectors.autoregressive.InverseAutoregressive`, the order reversed
    between layers, optional ActNorm before each.

    Sampling is one MADE pass per layer, and so is the log-density of the flow's own samples,
    which is what a variational posterior needs: with ``z ~ N(0, I)``,
    ``x, ld = flow.bijector.inverse(z, context)`` gives ``log q(x) = log N(z; 0, I) - ld``.
    ``log_prob`` of arbitrary data is ``D`` passes per layer. With ``context_features=K`` the
    flow is conditional on a ``(B, K)`` context (e.g. an encoder's features).
    ``scale_fn="sigmoid"`` bounds the scales like the paper's gated update. Starts as the
    identity with ``scale_fn="exp"``.
    Reference: D. P. Kingma et al., Improving Variational Inference with Inverse
    Autoregressive Flow, NeurIPS 2016, arXiv:1606.04934.
    """
    return autoregressive_flow(
        InverseAutoregressive,
        dim,
        num_layers,
        hidden,
        num_hidden_layers,
        context_features,
        scale_fn,
        use_actnorm,
        seed,
    )
