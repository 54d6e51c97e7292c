"""Building the flow a :class:`~glowflow.training.config.TrainConfig` describes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional

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
        return cls(name, tuple(int(s) for s in dataset.shape), int(dataset.n_bins),
                   getattr(dataset, "num_classes", None))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "DatasetInfo":
        return cls(str(values["name"]), tuple(int(s) for s in values["shape"]),
                   int(values["n_bins"]), values.get("num_classes"))


def build_flow(config: TrainConfig, info: DatasetInfo) -> Flow:
    """A fresh (not yet data-initialized) ``Flow(Glow(...))`` for ``config`` on ``info``'s data.

    ``config.conditional`` makes the top prior class-conditional on ``info.num_classes`` labels.
    """
    num_classes = None
    if config.conditional:
        if not info.num_classes:
            raise ValueError(f"conditional=true needs a labelled dataset; {info.name} has no labels")
        num_classes = info.num_classes
    glow = Glow(
        output_shape=info.shape,
        num_glow_blocks=config.num_glow_blocks,
        num_steps_per_block=config.num_steps_per_block,
        use_actnorm=config.use_actnorm,
        seed=config.seed,
        hidden_channels=config.hidden_channels,
        coupling=config.coupling,
        permutation=config.permutation,
        scale_fn=config.scale_fn,
        mask=config.mask,
        learn_top_prior=config.learn_top_prior,
        num_classes=num_classes,
        memory_mode=config.memory_mode,
    )
    return Flow(glow)
