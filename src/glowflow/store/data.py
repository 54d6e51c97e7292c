"""``DataSpec``: the one record of what a model's data is (``config.json``'s ``data``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..data import ImageDataset

PREPROCESSING = (
    "integer levels k in [0, n_bins) -> x = (k + u) / n_bins - 1/2 with u ~ U(0, 1) "
    "(uniform dequantization; u = 1/2, the bin centres, for encoding and decoding)"
)
"""glowflow's one input convention: every model, converted ones included, reads this ``x``."""


@dataclass(frozen=True)
class DataSpec:
    """What a model's data is and how an image becomes its input.

    Attributes:
        dataset: a :func:`glowflow.data.load_dataset` name (``digits``, ``cifar10``,
            ``celeba``, ``folder:PATH``, ...), or a description of data glowflow has no loader
            for (then the commands that need the dataset say so).
        shape: the model's input ``(C, H, W)`` (or ``(D,)``).
        n_bins: grey levels per channel (``2 ** n_bits``; 17 for digits).
        num_classes: the dataset's label count (``None``: unlabelled).
        image_size: centre-crop and resize to this side (``None``: images as stored).
        n_bits: bits kept per channel (``None``: all).
        val_size: training images held out as the ``val`` split.
        data_root: where the downloadable datasets were found.
        preprocessing: the input convention in words (:data:`PREPROCESSING`).
    """

    dataset: str
    shape: tuple[int, ...]
    n_bins: int
    num_classes: Optional[int] = None
    image_size: Optional[int] = None
    n_bits: Optional[int] = None
    val_size: int = 0
    data_root: str = "data"
    preprocessing: str = PREPROCESSING

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if len(self.shape) not in (1, 3) or min(self.shape) < 1:
            raise ConfigError(f"DataSpec.shape must be (C, H, W) or (D,), got {self.shape}")
        if self.n_bins < 2:
            raise ConfigError(f"DataSpec.n_bins must be >= 2, got {self.n_bins}")

    @classmethod
    def of(cls, dataset: Any, name: str, **loading: Any) -> "DataSpec":
        """The record of a loaded glowflow dataset (its ``shape``, ``n_bins``,
        ``num_classes``) under its ``name``, with how it was loaded (``image_size``,
        ``n_bits``, ``val_size``, ``data_root``)."""
        return cls(
            name,
            tuple(int(s) for s in dataset.shape),
            int(dataset.n_bins),
            getattr(dataset, "num_classes", None),
            **loading,
        )

    def load(self, split: str = "test", data_root: Optional[str] = None) -> "ImageDataset":
        """The dataset split, preprocessed as the model was trained (no augmentation)."""
        from ..data import DATASET_NAMES, load_dataset

        if self.dataset not in DATASET_NAMES and not self.dataset.startswith("folder:"):
            raise ConfigError(
                f"this model's data is {self.dataset!r}, which glowflow cannot load; give "
                f"image files where a command takes them"
            )
        return load_dataset(
            self.dataset,
            data_root or self.data_root,
            split,
            image_size=self.image_size,
            n_bits=self.n_bits,
            val_size=self.val_size,
        )

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["shape"] = list(self.shape)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "DataSpec") -> "DataSpec":
        """From ``config.json``'s ``data`` table, or an older checkpoint's dataset record
        (``name``, ``shape``, ``n_bins``, ``num_classes``)."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where}: 'data' must be a table, got {values!r}")
        values = dict(values)
        if "name" in values and "dataset" not in values:
            values["dataset"] = values.pop("name")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown data entries {unknown}; known: {sorted(known)}")
        try:
            return cls(**values)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{where}: {error}") from None
