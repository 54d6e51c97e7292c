"""RealNVP (Dinh, Sohl-Dickstein & Bengio 2017): the multi-scale image model, and affine
couplings for vectors."""

from __future__ import annotations

from typing import Optional, Sequence

from ..bijectors.chain import Chain
from ..bijectors.realnvp_multiscale import RealNVPMultiScale
from ..flow import Flow
from ..seeding import seeded
from .stacks import mlp_coupling_stack


def realnvp(
    event_shape: Sequence[int],
    num_scales: int = 2,
    hidden_channels: int = 64,
    num_res_blocks: int = 4,
    *,
    normalization: str = "batch",
    batch_norm_layers: bool = True,
    learn_split_prior: bool = False,
    seed: Optional[int] = None,
) -> Flow:
    """The paper's multi-scale RealNVP for images ``(C, H, W)``, a
    :class:`~glowflow.bijectors.realnvp_multiscale.RealNVPMultiScale` under ``N(0, I)``.

    At each of the ``num_scales`` scales: 3 affine couplings with alternating checkerboard
    masks, a squeeze, 3 with alternating channel masks, and half of the channels factored out;
    the last scale has 4 checkerboard couplings. Each coupling maps
    ``y_a = x_a * exp(c * tanh(h(x_b))) + t(x_b)``, ``(t, h)`` from a residual network of
    ``num_res_blocks`` blocks of ``hidden_channels`` features, with batch normalization or
    weight normalization inside (``normalization="batch" | "weight"``) and ``c`` a learned
    per-channel scale. ``batch_norm_layers=True`` adds the paper's batch normalization of every
    coupling's output as a bijector (batch statistics in training, running averages in eval).
    Factored-out channels are standard normal as in the paper; ``learn_split_prior=True``
    gives them Glow's learned conditional prior instead. Latents are per level
    (:meth:`Flow.encode`). ``H`` and ``W`` must be divisible by ``2 ** (num_scales - 1)``.

    Training uses batch statistics (``normalization="batch"``, ``batch_norm_layers``); call
    ``eval()`` to evaluate, encode, decode or sample, where the flow is an exact bijection.
    Reference: L. Dinh, J. Sohl-Dickstein, S. Bengio, Density estimation using Real NVP,
    ICLR 2017, arXiv:1605.08803.
    """
    with seeded(seed):
        return Flow(
            RealNVPMultiScale(
                event_shape,
                num_scales,
                hidden_channels,
                num_res_blocks,
                normalization,
                batch_norm_layers,
                learn_split_prior,
            )
        )


def realnvp_tabular(
    dim: int,
    num_layers: int = 6,
    hidden: int = 64,
    num_hidden_layers: int = 2,
    *,
    scale_fn: str = "exp",
    use_actnorm: bool = False,
    seed: Optional[int] = None,
) -> Flow:
    """RealNVP for vectors ``(D,)``: ``num_layers`` affine couplings with MLP networks.

    Coupling ``k`` maps ``y_a = x_a * exp(log s(x_b)) + t(x_b)`` with ``x_b`` the other half;
    the halves alternate (order reversed between couplings, see
    :func:`~glowflow.models.stacks.mlp_coupling_stack`); optional ActNorm before each.
    Starts as the identity. Reference: Dinh et al., arXiv:1605.08803.
    """
    with seeded(seed):
        layers = mlp_coupling_stack(
            dim, num_layers, "affine", hidden, num_hidden_layers, scale_fn, use_actnorm
        )
        return Flow(Chain(*layers, event_shape=(dim,)))
