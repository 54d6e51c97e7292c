"""The RealNVP family (Dinh, Sohl-Dickstein & Bengio 2017): the paper's multi-scale
architecture of checkerboard and channel-masked affine couplings with residual networks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..config_base import FlowConfig, option
from ..errors import ConfigError
from ..flow import Flow
from ..models.realnvp import realnvp
from .base import Family


@dataclass(frozen=True)
class RealNVPConfig(FlowConfig):
    """RealNVP: at each scale 3 checkerboard affine couplings, a squeeze, 3 channel-masked
    ones and half the channels factored out; the last scale 4 checkerboard couplings. Each
    coupling maps ``y = x * exp(c tanh(h(x_b))) + t(x_b)`` with a residual network ``h, t``;
    batch normalization of the couplings' outputs is a bijector (running statistics in eval).
    """

    event_shape: Optional[tuple[int, ...]] = option(
        None, "image shape (C, H, W) (training: the dataset's)", role="shape"
    )
    num_scales: int = option(2, "scales of the multi-scale architecture")
    hidden_channels: int = option(64, "features of the coupling networks' residual blocks")
    num_res_blocks: int = option(4, "residual blocks per coupling network")
    normalization: str = option(
        "batch", "normalization inside the coupling networks", ("batch", "weight")
    )
    batch_norm_layers: bool = option(
        True, "batch normalization of the couplings' outputs, as a bijector (the paper's)"
    )
    learn_split_prior: bool = option(
        False, "Glow's learned prior on the factored-out channels instead of N(0, I)"
    )
    seed: Optional[int] = option(None, "seed of the initialization", role="seed")

    def check(self) -> None:
        for name in ("num_scales", "hidden_channels", "num_res_blocks"):
            if getattr(self, name) < 1:
                raise ConfigError(f"RealNVPConfig.{name} must be >= 1, got {getattr(self, name)}")


def build(config: RealNVPConfig) -> Flow:
    """The RealNVP flow of ``config`` (see :func:`glowflow.models.realnvp`)."""
    if config.event_shape is None:
        raise ConfigError("RealNVPConfig.event_shape is none: give the image shape to build it")
    return realnvp(
        config.event_shape,
        config.num_scales,
        config.hidden_channels,
        config.num_res_blocks,
        normalization=config.normalization,
        batch_norm_layers=config.batch_norm_layers,
        learn_split_prior=config.learn_split_prior,
        seed=config.seed,
    )


FAMILY = Family(
    name="realnvp",
    summary="RealNVP: multi-scale checkerboard and channel affine couplings with residual "
    "networks and batch normalization (Dinh et al. 2017)",
    config_class=RealNVPConfig,
    builder=build,
    template=RealNVPConfig(hidden_channels=32, num_res_blocks=2),
    presets={"realnvp": {"name": "realnvp"}},
)
