"""The reconstruction check: ``decode(encode(x))`` must give ``x`` back (splits never resample)."""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from ..flow import Flow
from .common import batches, condition


class Reconstruction(NamedTuple):
    """What :func:`reconstruct` returns.

    Attributes:
        images: ``decode(encode(x))``, ``(B, C, H, W)``.
        errors: per-image maximum absolute error, ``(B,)``.
    """

    images: Tensor
    errors: Tensor

    @property
    def max_abs_error(self) -> float:
        """The largest absolute error over all images and pixels."""
        return float(self.errors.max()) if self.errors.numel() else 0.0


@torch.no_grad()
def reconstruct(
    flow: Flow, x: Tensor, y: Optional[Tensor] = None, batch_size: int = 256
) -> Reconstruction:
    """Encode and decode ``x`` (``(B, C, H, W)``) chunk by chunk; report the error per image."""
    images = []
    for xb, yb in batches(x, y, batch_size):
        context = condition(flow, yb)
        images.append(flow.decode(flow.encode(xb, context), context))
    result = torch.cat(images, dim=0) if images else x.clone()
    errors = (result - x).abs().flatten(1).amax(dim=1) if x.shape[0] else x.new_zeros(0)
    return Reconstruction(result, errors)
