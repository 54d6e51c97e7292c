"""Building the flow a :class:`~glowflow.training.config.TrainConfig` describes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional

from torch import nn

from ..config import GlowConfig
from ..dequantization import make_dequantizer
from ..flow import Flow
from ..glow import Glow
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


def model_config(config: TrainConfig, info: DatasetInfo) -> GlowConfig:
    """The run's complete :class:`GlowConfig`: ``config.model`` with the data's shape, the run's
    seed and, with ``config.conditional``, the data's class count."""
    num_classes = None
    if config.conditional:
        if not info.num_classes:
            raise ValueError(
                f"conditional=true needs a labelled dataset; {info.name} has no labels"
            )
        num_classes = info.num_classes
    return config.model.replace(output_shape=info.shape, seed=config.seed, num_classes=num_classes)


def build_flow(config: TrainConfig, info: DatasetInfo) -> Flow:
    """A fresh (not yet data-initialized) ``Flow(Glow(model_config(config, info)))``."""
    return Flow(Glow(model_config(config, info)))


def build_dequantizer(config: TrainConfig, info: DatasetInfo) -> nn.Module:
    """The run's dequantizer (:mod:`glowflow.dequantization`), freshly initialized."""
    return make_dequantizer(
        config.dequantization,
        info.shape,
        info.n_bins,
        config.dequantizer_steps,
        config.dequantizer_hidden,
    )
