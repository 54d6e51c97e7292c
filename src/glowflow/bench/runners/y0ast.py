"""Runner for y0ast/Glow-PyTorch: ``python -m glowflow.bench.runners.y0ast PEER_PATH SPEC_JSON``.

Builds the peer's ``model.Glow`` for the benchmark's :class:`~glowflow.GlowConfig`: ``K``,
``L``, width, affine or additive coupling, LU 1x1 convolutions when the config has them, its
learned top prior when the config has one, no class conditioning. Its forward adds the uniform
dequantization noise itself and returns bits/dim; sampling draws the top latent and lets the
peer's splits draw the others at temperature 1.
"""

from __future__ import annotations

import sys

import torch

from ...config import GlowConfig
from ..measure import Result, Tasks
from .common import main, train_step


def build(spec: Result, x: torch.Tensor) -> Tasks:
    import model as peer  # y0ast's model.py, from PEER_PATH

    config = GlowConfig.from_dict(spec["config"])
    channels, height, width = config.output_shape or x.shape[1:]
    glow = peer.Glow(
        image_shape=(height, width, channels),
        hidden_channels=config.hidden_channels,
        K=config.num_steps_per_block,
        L=config.num_glow_blocks,
        actnorm_scale=1.0,
        flow_permutation="invconv",
        flow_coupling=config.coupling or "affine",
        LU_decomposed=config.permutation == "invconv_lu",
        y_classes=10,
        learn_top=config.learn_top_prior,
        y_condition=False,
    ).to(x.device)
    glow(x)  # the data-dependent ActNorm initialization (on the first training-mode call)
    top = glow.flow.output_shapes[-1][1:]

    def sample() -> torch.Tensor:
        z = torch.randn(x.shape[0], *top, device=x.device)
        return glow(z=z, temperature=1.0, reverse=True)

    return Tasks(
        glow, train_step(glow, lambda: glow(x)[1].mean(), x.device), sample, lambda: glow(x)
    )


if __name__ == "__main__":
    main(sys.argv[1:], build)
