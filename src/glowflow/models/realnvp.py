"""RealNVP (Dinh, Sohl-Dickstein & Bengio 2017): affine couplings, for images and vectors."""

from __future__ import annotations

from typing import Optional, Sequence

from ..bijectors.base import Bijector, Shape
from ..bijectors.chain import Chain
from ..flow import Flow
from ..glow import Glow
from ..seeding import seeded
from .stacks import mlp_coupling_stack


def realnvp(
    event_shape: Sequence[int],
    num_scales: int = 2,
    num_steps_per_scale: int = 6,
    hidden_channels: int = 64,
    *,
    scale_fn: str = "exp",
    use_actnorm: bool = False,
    learn_split_prior: bool = False,
    seed: Optional[int] = None,
) -> Flow:
    """A multi-scale RealNVP for images ``(C, H, W)``, built on :class:`~glowflow.Glow`.

    Each of the ``num_scales`` levels squeezes, then applies ``num_steps_per_scale`` affine
    couplings -- the first ``ceil(K / 2)`` with checkerboard masks of alternating parity, the
    rest channel-wise -- with the channel order reversed before each, and factors out half of
    the channels after every level but the last (``Glow(mask="checkerboard_channel",
    permutation="reverse", coupling="affine")``). ``H`` and ``W`` must be divisible by
    ``2 ** num_scales``.

    Differences from the paper, by design: the coupling networks are Glow's zero-initialized
    convolutional networks of width ``hidden_channels`` rather than ResNets, and ActNorm
    (``use_actnorm=True``) stands in for batch normalization. As in the paper, factored-out
    channels are standard normal; ``learn_split_prior=True`` gives them Glow's learned
    conditional prior instead. Latents are per level (:meth:`Flow.encode`).
    Reference: L. Dinh, J. Sohl-Dickstein, S. Bengio, Density estimation using Real NVP,
    ICLR 2017, arXiv:1605.08803.
    """
    glow = Glow(
        event_shape,
        num_glow_blocks=num_scales,
        num_steps_per_block=num_steps_per_scale,
        exit_bijector_fn=None if learn_split_prior else _standard_normal_exit,
        use_actnorm=use_actnorm,
        seed=seed,
        hidden_channels=hidden_channels,
        coupling="affine",
        permutation="reverse",
        scale_fn=scale_fn,
        mask="checkerboard_channel",
    )
    return Flow(glow)


def _standard_normal_exit(input_shape: Shape, output_channels: int) -> Bijector:
    """RealNVP's factor-out: the exiting channels go to the ``N(0, I)`` base unchanged."""
    return Chain()


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
