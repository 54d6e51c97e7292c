"""Reproducible construction without side effects on the global random state."""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch


@contextlib.contextmanager
def seeded(seed: Optional[int]) -> Iterator[None]:
    """Run the block under ``torch.manual_seed(seed)`` and restore the global CPU RNG after.

    With ``seed=None`` the block draws from (and advances) the global RNG as usual, so two
    unseeded constructions differ.
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
