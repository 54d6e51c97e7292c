"""Converters from other Glow implementations' checkpoints to glowflow pretrained folders.

Each reads the source's tensors (never importing its code, never unpickling code: torch files
go through ``torch.load(weights_only=True)``), maps every tensor onto a glowflow model whose
:class:`~glowflow.GlowConfig` expresses the source's architecture exactly, and returns a
:class:`~glowflow.convert.common.Converted` that :meth:`~Converted.save` writes as a pretrained
folder. The proof of exactness is in ``tests/test_convert.py``, against fixtures written by the
sources' own code (``scripts/fixtures/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # the package imports without torch (tfp_variables runs beside TensorFlow)
    from .common import Converted

SOURCES = ("y0ast", "rosinality", "chaiyujin", "tfp")
"""The implementations :func:`convert` reads."""


def _converter(source: str) -> Callable[..., "Converted"]:
    if source == "y0ast":
        from .ports import convert_y0ast

        return convert_y0ast
    if source == "chaiyujin":
        from .ports import convert_chaiyujin

        return convert_chaiyujin
    if source == "rosinality":
        from .rosinality import convert_rosinality

        return convert_rosinality
    if source == "tfp":
        from .tfp import convert_tfp

        return convert_tfp
    raise ValueError(f"unknown source {source!r}; one of {SOURCES}")


def convert(source: str, path: Path, **options: Any) -> "Converted":
    """Convert checkpoint ``path`` of implementation ``source`` (one of :data:`SOURCES`);
    ``options`` are the converter's own (``hparams``, ``dataset``, ``image_size``, ...)."""
    return _converter(source)(Path(path), **options)


__all__ = ["SOURCES", "convert"]
