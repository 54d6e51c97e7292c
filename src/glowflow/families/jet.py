"""The Jet family (Kolesnikov et al. 2024, "Jet: A Modern Transformer-Based Normalizing
Flow"): affine couplings over image patches whose conditioners are ViTs, between fixed channel
and spatial permutations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..config_base import FlowConfig, option
from ..errors import ConfigError
from ..flow import Flow
from ..models.jet import jet
from .base import Family


@dataclass(frozen=True)
class JetConfig(FlowConfig):
    """Jet: ``x -> Patchify(p) -> K`` affine couplings ``y_a = x_a * 2 sigmoid(s(x_b)) +
    t(x_b)``, each conditioner a ViT over the patches, the split between halves a fixed
    random channel permutation or a spatial pattern. The defaults are the paper's
    ImageNet-64 model."""

    event_shape: Optional[tuple[int, ...]] = option(
        None, "image shape (C, H, W) (training: the dataset's)", role="shape"
    )
    patch_size: int = option(4, "patch side p; H and W divisible by it")
    num_couplings: int = option(32, "affine couplings K")
    block_depth: int = option(2, "ViT layers per coupling")
    width: int = option(512, "ViT width")
    head_dim: int = option(64, "channels per attention head")
    expansion: int = option(4, "MLP expansion of the ViT layers")
    seed: Optional[int] = option(None, "seed of the initialization", role="seed")

    def check(self) -> None:
        for name in ("patch_size", "num_couplings", "block_depth", "width", "head_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"JetConfig.{name} must be >= 1, got {getattr(self, name)}")


def build(config: JetConfig) -> Flow:
    """The Jet of ``config`` (see :func:`glowflow.models.jet`)."""
    if config.event_shape is None:
        raise ConfigError("JetConfig.event_shape is none: give the image shape to build it")
    return jet(
        config.event_shape,
        config.patch_size,
        config.num_couplings,
        config.block_depth,
        config.width,
        head_dim=config.head_dim,
        expansion=config.expansion,
        seed=config.seed,
    )


FAMILY = Family(
    name="jet",
    summary="Jet: affine couplings with ViT conditioners over image patches "
    "(Kolesnikov et al. 2024)",
    config_class=JetConfig,
    builder=build,
    template=JetConfig(patch_size=2, num_couplings=8, block_depth=1, width=64, head_dim=32),
    presets={"jet": {"name": "jet", "optimizer": "adamw", "lr": 5e-4}},
)
