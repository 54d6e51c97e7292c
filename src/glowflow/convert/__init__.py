"""Converters from other implementations' checkpoints (Glow ports, TFP, ml-tarflow) to model folders.

Each reads the source's tensors (never importing its code, never unpickling code: torch files
go through ``torch.load(weights_only=True)``), maps every tensor onto a glowflow model whose
:class:`~glowflow.GlowConfig` expresses the source's architecture exactly, and returns a
:class:`~glowflow.convert.common.Converted` that :meth:`~Converted.save` writes as a pretrained
folder. The proof of exactness is in ``tests/test_convert.py``, against fixtures written by the
sources' own code (``scripts/fixtures/``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ConfigError

if TYPE_CHECKING:  # the package imports without torch (tfp_variables runs beside TensorFlow)
    from .common import Converted


@dataclass(frozen=True)
class Option:
    """One keyword argument of a converter; ``glowflow convert`` offers it as ``--name``
    (underscores as dashes) and passes it only when given.

    Attributes:
        name: the keyword.
        help: what it means, for ``glowflow convert --help``.
        type: reads the value from its command-line text.
        metavar: the value's name in the help.
        default: what the converter uses when the option is not given (its signature's
            default, checked by ``tests/test_cli_common.py``); ``None``: it decides itself.
    """

    name: str
    help: str
    type: Callable[[str], Any] = str
    metavar: str = "TEXT"
    default: Any = None

    @property
    def flag(self) -> str:
        """The command-line flag, ``--name-with-dashes``."""
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Source:
    """An implementation :func:`convert` reads.

    Attributes:
        name: its ``--from`` name.
        converter: ``module:function`` in this package, imported on first use, called as
            ``function(path, **options)``.
        reads: what its checkpoint file is.
        options: the keyword arguments the converter takes.
    """

    name: str
    converter: str
    reads: str
    options: tuple[Option, ...]

    def load(self) -> Callable[..., "Converted"]:
        """The converter function."""
        module, function = self.converter.split(":")
        return getattr(importlib.import_module(module, __name__), function)


def _n_bits(default: int) -> Option:
    return Option("n_bits", "bits per channel of the data", int, "N", default)


_DATASET = Option(
    "dataset",
    "the data's glowflow name (cifar10, celeba, folder:PATH, ...); none: from the "
    "hyper-parameters, else 'unknown'",
    metavar="NAME",
)
_HPARAMS = Option("hparams", "the hyper-parameter JSON", Path, "FILE")

REGISTRY: dict[str, Source] = {
    source.name: source
    for source in (
        Source(
            "y0ast",
            ".ports:convert_y0ast",
            "glow_affine_coupling.pt (hparams.json beside it is read)",
            (_HPARAMS, _DATASET, _n_bits(8)),
        ),
        Source(
            "rosinality",
            ".rosinality:convert_rosinality",
            "model_*.pt",
            (
                Option(
                    "image_size",
                    "the image side (its state dict does not record it; 64 is its train.py's)",
                    int,
                    "N",
                    64,
                ),
                _DATASET,
                _n_bits(5),
            ),
        ),
        Source("chaiyujin", ".ports:convert_chaiyujin", "*.pkg", (_HPARAMS, _DATASET, _n_bits(8))),
        Source(
            "tfp",
            ".tfp:convert_tfp",
            "a tf.train.Checkpoint prefix or an .npz of its variables",
            (
                Option(
                    "hparams",
                    "a JSON of the tfb.Glow's arguments (output_shape HWC, num_glow_blocks, "
                    "num_steps_per_block, num_hidden), for a checkpoint prefix",
                    Path,
                    "FILE",
                ),
                _DATASET,
                _n_bits(8),
            ),
        ),
        Source(
            "tarflow",
            ".tarflow:convert_tarflow",
            "an ml-tarflow Model state dict (.pth, as its AFHQ-256 checkpoint)",
            (
                Option("in_channels", "the images' channels (not recorded)", int, "N", 3),
                Option("head_dim", "channels per attention head", int, "N", 64),
                Option(
                    "data",
                    "the inputs the folder reads: glowflow ([-1/2, 1/2)) or tarflow ([-1, 1])",
                    str,
                    "RANGE",
                    "glowflow",
                ),
            ),
        ),
    )
}
"""Every implementation :func:`convert` reads, by ``--from`` name."""

SOURCES = tuple(REGISTRY)
"""The implementations :func:`convert` reads."""


def convert(source: str, path: Path, **options: Any) -> "Converted":
    """Convert checkpoint ``path`` of implementation ``source`` (one of :data:`SOURCES`);
    ``options`` are the converter's own (its :attr:`Source.options`: ``hparams``,
    ``dataset``, ``image_size``, ...)."""
    if source not in REGISTRY:
        raise ConfigError(f"unknown source {source!r}; one of {SOURCES}")
    return REGISTRY[source].load()(Path(path), **options)


__all__ = ["REGISTRY", "SOURCES", "Option", "Source", "convert"]
