"""Building the flow a :class:`~glowflow.training.config.TrainConfig` describes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional

from torch import nn

from ..config_base import FlowConfig
from ..dequantization import make_dequantizer
from ..errors import ConfigError
from ..families import build
from ..flow import Flow
from .config import TrainConfig


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about its data, saved with every checkpoint.

    Attributes:
        name: the dataset name given to :func:`glowflow.data.load_dataset`.
        shape: image shape ``(C, H, W)``.
        n_bins: grey levels per dimension (``2 ** n_bits``; 17 for digits).
        num_classes: number of labels, ``None`` when unlabelled.
    """

    name: str
    shape: tuple[int, int, int]
    n_bins: int
    num_classes: Optional[int] = None

    @classmethod
    def of(cls, name: str, dataset: Any) -> "DatasetInfo":
        """Read ``shape``, ``n_bins``, ``num_classes`` off a glowflow dataset."""
        return cls(
            name,
            tuple(int(s) for s in dataset.shape),
            int(dataset.n_bins),
            getattr(dataset, "num_classes", None),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "DatasetInfo":
        return cls(
            str(values["name"]),
            tuple(int(s) for s in values["shape"]),
            int(values["n_bins"]),
            values.get("num_classes"),
        )


def model_config(config: TrainConfig, info: DatasetInfo) -> FlowConfig:
    """The run's complete model config: ``config.model`` with the fields the run decides
    filled in (by their roles, :mod:`glowflow.config_base`): the data's shape, the run's seed
    and, with ``config.conditional``, the data's class count."""
    model = config.model
    changes: dict[str, Any] = {name: info.shape for name in model.fields_with_role("shape")}
    changes.update({name: config.seed for name in model.fields_with_role("seed")})
    classes = model.fields_with_role("classes")
    if config.conditional:
        if not info.num_classes:
            raise ConfigError(
                f"conditional=true needs a labelled dataset; {info.name} has no labels"
            )
        if not classes:
            raise ConfigError(
                f"conditional=true: the {config.family} family has no class-conditional model"
            )
    changes.update({name: info.num_classes if config.conditional else None for name in classes})
    return model.replace(**changes)


def build_flow(config: TrainConfig, info: DatasetInfo) -> Flow:
    """A fresh (not yet data-initialized) flow of the run's family and
    :func:`model_config`."""
    return build(model_config(config, info))


def build_dequantizer(config: TrainConfig, info: DatasetInfo) -> nn.Module:
    """The run's dequantizer (:mod:`glowflow.dequantization`), freshly initialized."""
    return make_dequantizer(
        config.dequantization,
        info.shape,
        info.n_bins,
        config.dequantizer_steps,
        config.dequantizer_hidden,
    )
