"""Exponential moving average of a model's weights (Polyak averaging)."""

from __future__ import annotations

import copy
from typing import Optional, Union

import torch
from torch import Tensor, nn

from ..errors import ConfigError


class EMA:
    """A frozen copy of ``model`` whose parameters track ``theta_ema <- d theta_ema + (1-d) theta``.

    At update ``t`` (0-based) the decay is ``d_t = min(decay, (1 + t) / (10 + t))``, so the
    average forgets the initial weights quickly in short runs (TensorFlow's ``num_updates``
    rule). Buffers (ActNorm's ``initialized`` flag, permutations, ...) are copied as they are.
    The copy is kept in eval mode; use :attr:`module` for evaluation and sampling.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, t: int, taken: Optional[Tensor] = None) -> None:
        """Averaging step ``t`` towards ``model``'s current weights; with ``taken`` (a 0-dim
        bool tensor) only where it holds, decided on the device without a host sync."""
        weight: Union[float, Tensor] = 1.0 - min(self.decay, (1.0 + t) / (10.0 + t))
        if taken is not None:
            weight = taken.to(torch.float32) * weight
        for average, current in zip(self.module.parameters(), model.parameters()):
            average.lerp_(current.detach(), weight)
        for average, current in zip(self.module.buffers(), model.buffers()):
            average.copy_(current)
