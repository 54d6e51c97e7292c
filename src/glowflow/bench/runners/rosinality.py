"""Runner for rosinality/glow-pytorch:
``python -m glowflow.bench.runners.rosinality PEER_PATH SPEC_JSON``.

Builds the peer's ``model.Glow`` for the benchmark's :class:`~glowflow.GlowConfig`: ``K``
(``n_flow``), ``L`` (``n_block``), affine or additive coupling, LU 1x1 convolutions when the
config has them. Its coupling width is a default argument (512) that ``Glow`` does not pass on,
so the runner sets that default to the config's width. Its priors are always learned. The loss
is its ``train.py``'s: uniform noise added to ``x``, then
``bpd = -(log p + logdet - D log 256) / (D log 2)``; sampling is ``reverse`` of standard normal
draws for every level.
"""

from __future__ import annotations

import math
import sys

import torch

from ...config import GlowConfig
from ..measure import Result, Tasks
from .common import main, train_step

N_BINS = 256


def build(spec: Result, x: torch.Tensor) -> Tasks:
    import model as peer  # rosinality's model.py, from PEER_PATH

    config = GlowConfig.from_dict(spec["config"])
    peer.AffineCoupling.__init__.__defaults__ = (config.hidden_channels, True)
    glow = peer.Glow(
        x.shape[1],
        config.num_steps_per_block,
        config.num_glow_blocks,
        affine=(config.coupling or "affine") == "affine",
        conv_lu=config.permutation == "invconv_lu",
    ).to(x.device)
    with torch.no_grad():
        shapes = [z.shape[1:] for z in glow(x)[2]]  # also the data-dependent initialization
    pixels = x[0].numel()

    def bpd() -> torch.Tensor:
        log_p, logdet, _ = glow(x + torch.rand_like(x) / N_BINS)
        log_likelihood = log_p + logdet - math.log(N_BINS) * pixels
        return (-log_likelihood / (math.log(2) * pixels)).mean()

    def sample() -> torch.Tensor:
        return glow.reverse([torch.randn(x.shape[0], *shape, device=x.device) for shape in shapes])

    return Tasks(glow, train_step(glow, bpd, x.device), sample, lambda: glow(x))


if __name__ == "__main__":
    main(sys.argv[1:], build)
