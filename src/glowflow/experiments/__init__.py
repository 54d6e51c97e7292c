"""The Glow paper's experiments as library functions on a trained :class:`~glowflow.Flow`.

Each takes a flow and tensors and returns tensors; the ``glowflow`` subcommands
``interpolate``, ``manipulate``, ``reconstruct`` and ``ablate`` wrap them. Three modules need
the command-line extras and are imported from where they live: :mod:`.ablation` (trains the
paper's Figure 3 variants through :func:`glowflow.training.trainer.train`), :mod:`.files` (a
run's dataset images in, PNG grids out) and :mod:`.pictures` (every labelled PNG grid glowflow
writes, the training sample grids included).
"""

from .class_grid import class_grid
from .interpolate import interpolate
from .manipulate import (
    attribute_direction,
    load_direction,
    manipulate,
    mean_latents,
    save_direction,
    select_groups,
)
from .reconstruct import Reconstruction, reconstruct

__all__ = [
    "Reconstruction",
    "attribute_direction",
    "class_grid",
    "interpolate",
    "load_direction",
    "manipulate",
    "mean_latents",
    "reconstruct",
    "save_direction",
    "select_groups",
]
