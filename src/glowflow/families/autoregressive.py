"""The autoregressive families on flattened images: MAF (Papamakarios et al. 2017) and IAF
(Kingma et al. 2016), both stacks of MADE-conditioned affine layers, the order of the
dimensions reversed between layers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..config_base import FlowConfig, option
from ..errors import ConfigError
from ..flow import Flow
from ..models.iaf import iaf
from ..models.maf import maf
from .base import Family


@dataclass(frozen=True)
class AutoregressiveConfig(FlowConfig):
    """What MAF and IAF share: ``num_layers`` autoregressive affine layers on the flattened
    ``D``-dimensional image, each ``z_i = (x_i - mu_i) exp(-alpha_i)`` (MAF) or
    ``x_i = z_i exp(alpha_i) + mu_i`` (IAF), ``mu, alpha`` from a MADE over the preceding
    dimensions."""

    event_shape: Optional[tuple[int, ...]] = option(
        None, "data shape (C, H, W) or (D,) (training: the dataset's)", role="shape"
    )
    num_layers: int = option(5, "autoregressive layers")
    hidden: int = option(1024, "units per hidden layer of each MADE")
    num_hidden_layers: int = option(2, "hidden layers of each MADE")
    scale_fn: str = option(
        "exp", "scale of the affine update: exp(alpha), or a bounded sigmoid", ("exp", "sigmoid")
    )
    use_actnorm: bool = option(False, "an ActNorm before each layer")
    seed: Optional[int] = option(None, "seed of the initialization", role="seed")

    def check(self) -> None:
        for name in ("num_layers", "hidden", "num_hidden_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"{type(self).__name__}.{name} must be >= 1, got {getattr(self, name)}"
                )

    def shape(self) -> tuple[int, ...]:
        """The event shape, which a model needs before it is built."""
        if self.event_shape is None:
            raise ConfigError(
                f"{type(self).__name__}.event_shape is none: give the data shape to build it"
            )
        return self.event_shape


@dataclass(frozen=True)
class MAFConfig(AutoregressiveConfig):
    """MAF: density in one MADE pass per layer, sampling in ``D`` (Papamakarios et al. 2017,
    arXiv:1705.07057)."""

    batch_norm_layers: bool = option(
        False, "batch normalization between the layers, as a bijector (the paper's)"
    )


@dataclass(frozen=True)
class IAFConfig(AutoregressiveConfig):
    """IAF: sampling in one MADE pass per layer; the density of given data is sequential,
    ``D`` passes per layer (Kingma et al. 2016, arXiv:1606.04934)."""


def build_maf(config: MAFConfig) -> Flow:
    """The MAF flow of ``config`` (see :func:`glowflow.models.maf`)."""
    return maf(
        config.shape(),
        config.num_layers,
        config.hidden,
        config.num_hidden_layers,
        scale_fn=config.scale_fn,
        batch_norm_layers=config.batch_norm_layers,
        use_actnorm=config.use_actnorm,
        seed=config.seed,
    )


def build_iaf(config: IAFConfig) -> Flow:
    """The IAF flow of ``config`` (see :func:`glowflow.models.iaf`)."""
    return iaf(
        config.shape(),
        config.num_layers,
        config.hidden,
        config.num_hidden_layers,
        scale_fn=config.scale_fn,
        use_actnorm=config.use_actnorm,
        seed=config.seed,
    )


MAF = Family(
    name="maf",
    summary="MAF: masked autoregressive flow on the flattened image, MADE conditioners "
    "(Papamakarios et al. 2017)",
    config_class=MAFConfig,
    builder=build_maf,
    template=MAFConfig(hidden=256),
    presets={"maf": {"name": "maf"}},
)

IAF = Family(
    name="iaf",
    summary="IAF: inverse autoregressive flow on the flattened image; one-pass sampling, "
    "sequential density (Kingma et al. 2016)",
    config_class=IAFConfig,
    builder=build_iaf,
    template=IAFConfig(hidden=128, num_layers=3),
    presets={"iaf": {"name": "iaf"}},
)
