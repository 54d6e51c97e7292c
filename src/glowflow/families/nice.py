"""The NICE family (Dinh, Krueger & Bengio 2015): additive couplings on the flattened image,
NICE's diagonal scaling, and the paper's logistic prior as an option."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..config_base import FlowConfig, option
from ..errors import ConfigError
from ..flow import Flow
from ..models.nice import nice
from .base import Family


@dataclass(frozen=True)
class NICEConfig(FlowConfig):
    """NICE: ``z = S(f_L(... f_1(x)))``, each ``f_k`` an additive coupling of one half of the
    flattened image given the other (halves alternating), ``S`` a diagonal scaling
    ``exp(s)``; ``log p(x) = log p_prior(z) + sum(s)``. The defaults are the paper's MNIST
    model (4 couplings of 5 x 1000 ReLU units)."""

    event_shape: Optional[tuple[int, ...]] = option(
        None, "data shape (C, H, W) or (D,) (training: the dataset's)", role="shape"
    )
    num_layers: int = option(4, "additive coupling layers")
    hidden: int = option(1000, "units per hidden layer of each coupling's MLP")
    num_hidden_layers: int = option(5, "hidden layers of each coupling's MLP")
    prior: str = option(
        "gaussian",
        "prior on z: gaussian, or the paper's logistic (a bijector onto the normal base)",
        ("gaussian", "logistic"),
    )
    seed: Optional[int] = option(None, "seed of the initialization", role="seed")

    def check(self) -> None:
        for name in ("num_layers", "hidden", "num_hidden_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"NICEConfig.{name} must be >= 1, got {getattr(self, name)}")


def build(config: NICEConfig) -> Flow:
    """The NICE flow of ``config`` (see :func:`glowflow.models.nice`)."""
    if config.event_shape is None:
        raise ConfigError("NICEConfig.event_shape is none: give the data shape to build it")
    return nice(
        config.event_shape,
        config.num_layers,
        config.hidden,
        config.num_hidden_layers,
        prior=config.prior,
        seed=config.seed,
    )


FAMILY = Family(
    name="nice",
    summary="NICE: additive couplings on the flattened image, diagonal scaling, Gaussian or "
    "logistic prior (Dinh et al. 2015)",
    config_class=NICEConfig,
    builder=build,
    template=NICEConfig(hidden=256, num_hidden_layers=3, prior="logistic"),
    presets={"nice": {"name": "nice"}},
)
