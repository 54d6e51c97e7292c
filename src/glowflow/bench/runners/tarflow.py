"""Runner for apple/ml-tarflow: ``python -m glowflow.bench.runners.tarflow PEER_PATH SPEC_JSON``.

Builds ml-tarflow's ``transformer_flow.Model`` for the benchmark's
:class:`~glowflow.families.tarflow.TarFlowConfig`: the patch size, width, number of blocks,
layers per block (one count for every block), attention head width and MLP expansion, no
classes. Its ``Model`` does not pass a head width to its blocks, so the runner sets the
blocks' default to the config's before building (the only setting changed from outside).
Training minimizes its own loss (``get_loss``: the per-dimension negative log-likelihood, a
constant multiple of bits/dim); sampling is its ``reverse`` of a standard normal latent (the
sequential inverse with its key/value cache, as glowflow's default); encoding is its forward.
"""

from __future__ import annotations

import sys

import torch

from ...families.tarflow import TarFlowConfig
from ..measure import Result, Tasks
from .common import main, train_step


def build(spec: Result, x: torch.Tensor) -> Tasks:
    import transformer_flow as peer  # ml-tarflow's transformer_flow.py, from PEER_PATH

    config = TarFlowConfig.from_dict(spec["config"])
    layers = set(config.layers_per_block)
    if len(layers) != 1 or config.start_token or config.scale != "exp" or config.num_classes:
        raise SystemExit(
            "ml-tarflow's Model has one layer count for every block, no start token, the exp "
            f"scale and here no classes; the benchmark's config has {config}"
        )
    defaults = list(peer.MetaBlock.__init__.__defaults__)
    defaults[1:3] = [config.head_dim, config.expansion]  # (num_layers, head_dim, expansion, ...)
    peer.MetaBlock.__init__.__defaults__ = tuple(defaults)
    channels, height, width = x.shape[1:]
    model = peer.Model(
        in_channels=channels,
        img_size=height,
        patch_size=config.patch_size,
        channels=config.channels,
        num_blocks=config.num_blocks,
        layers_per_block=layers.pop(),
    ).to(x.device)
    tokens = model.num_patches
    features = channels * config.patch_size**2

    def loss() -> torch.Tensor:
        z, _, logdets = model(x)
        return model.get_loss(z, logdets)

    def sample() -> torch.Tensor:
        # As ml-tarflow's own sampling, without gradients; its blocks take a parameter (the
        # positional embedding) as a module input, which torch's FLOP counter cannot follow
        # under no_grad unless the parameters leave autograd for the call.
        parameters = [p for p in model.parameters() if p.requires_grad]
        try:
            for parameter in parameters:
                parameter.requires_grad_(False)
            with torch.no_grad():
                return model.reverse(torch.randn(x.shape[0], tokens, features, device=x.device))
        finally:
            for parameter in parameters:
                parameter.requires_grad_(True)

    return Tasks(model, train_step(model, loss, x.device), sample, lambda: model(x))


if __name__ == "__main__":
    main(sys.argv[1:], build)
