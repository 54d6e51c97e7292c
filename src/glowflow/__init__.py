"""glowflow: Glow normalizing flows in PyTorch.

``import glowflow`` loads torch only when a torch-backed name is first used, so
``glowflow.GlowConfig`` (a plain dataclass) is available without it.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import GlowConfig as GlowConfig

__version__ = "0.1.0"

_HOMES = {
    "Flow": ".flow",
    "Glow": ".glow",
    "TrainConfig": ".training.config",
    "bits_per_dim": ".metrics",
    "from_pretrained": ".store",
    "load_dataset": ".data",
    "load_model": ".store",
    "models": ".models",
    "resolve_config": ".training.config",
    "save_model": ".store",
    "train": ".training.trainer",
}
"""Where each torch-backed top-level name lives; the bijectors come from :mod:`.bijectors`."""


def __getattr__(name: str) -> Any:
    """Import torch-backed names on first use (PEP 562)."""
    if name in _HOMES:
        module = importlib.import_module(_HOMES[name], __name__)
        return module if name == "models" else getattr(module, name)
    bijectors = importlib.import_module(".bijectors", __name__)
    if name in bijectors.__all__:
        return getattr(bijectors, name)
    raise AttributeError(f"module 'glowflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    bijectors = importlib.import_module(".bijectors", __name__)
    return sorted([*globals(), *_HOMES, *bijectors.__all__])
