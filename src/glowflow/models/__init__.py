"""Ready-made flows beside Glow: NICE, RealNVP, MAF and IAF, each a :class:`~glowflow.Flow`
with a standard normal base."""

from .iaf import iaf
from .jet import jet
from .maf import maf
from .nice import nice
from .realnvp import realnvp, realnvp_tabular
from .tarflow import TarFlowModel, tarflow

__all__ = ["TarFlowModel", "iaf", "jet", "maf", "nice", "realnvp", "realnvp_tabular", "tarflow"]
