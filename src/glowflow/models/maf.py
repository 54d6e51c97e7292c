"""MAF (Papamakarios et al. 2017): a stack of masked autoregressive layers."""

from __future__ import annotations

from typing import Optional

from ..bijectors.autoregressive import MaskedAutoregressive
from ..flow import Flow
from .stacks import autoregressive_flow


def maf(
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
    """A masked autoregressive flow on ``(D,)``: ``num_layers`` x
    :class:`~glowflow.bijectors.autoregressive.MaskedAutoregressive`, the order reversed
    between layers, optional ActNorm before each (the paper used batch normalization).

    ``log_prob`` is one MADE pass per layer; ``sample`` is ``D`` passes per layer. With
    ``context_features=K`` the flow is conditional: pass the ``(B, K)`` context as ``y`` to
    :meth:`Flow.log_prob` and :meth:`Flow.sample`. Starts as the identity (``scale_fn="exp"``).
    Reference: G. Papamakarios, T. Pavlakou, I. Murray, Masked Autoregressive Flow for Density
    Estimation, NeurIPS 2017, arXiv:1705.07057.
    """
    return autoregressive_flow(
        MaskedAutoregressive,
        dim,
        num_layers,
        hidden,
        num_hidden_layers,
        context_features,
        scale_fn,
        use_actnorm,
        seed,
    )
