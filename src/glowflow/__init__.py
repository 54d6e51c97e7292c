"""glowflow: Glow normalizing flows in PyTorch."""

from . import models
from .bijectors import *  # noqa: F401,F403
from .bijectors import __all__ as _bijector_names
from .flow import Flow, FlowOutput
from .glow import Glow
from .metrics import bits_per_dim

__version__ = "0.1.0"
__all__ = [*_bijector_names, "Flow", "FlowOutput", "Glow", "bits_per_dim", "models"]
