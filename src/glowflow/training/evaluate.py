"""Test-set bits/dim: mean and standard error over images, averaged over dequantization draws."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from ..data import dequantize
from ..flow import Flow


@dataclass(frozen=True)
class BpdResult:
    """``bpd``: mean over images of each image's bits/dim averaged over ``draws`` uniform
    dequantizations; ``stderr``: standard error of that mean over the ``num_images`` images."""

    bpd: float
    stderr: float
    num_images: int
    draws: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bpd_sums(
    flow: Flow, dataset: Dataset, n_bins: int, *, draws: int, batch_size: int,
    device: torch.device, seed: int, conditional: bool, indices: Optional[Sequence[int]] = None,
) -> Tensor:
    """``[sum_i b_i, sum_i b_i^2, N]`` (float64, on ``device``) over the images ``indices``.

    ``b_i = (1/draws) sum_d bpd(x_i + u_d)`` with ``u_d`` the ``d``-th uniform dequantization
    from a generator seeded with ``seed``. Summed (not averaged) so shards of a distributed
    evaluation combine by ``all_reduce``. Runs in eval mode, then restores the flow's mode.
    """
    subset = Subset(dataset, list(indices)) if indices is not None else dataset
    loader = DataLoader(subset, batch_size=batch_size, shuffle=False)
    generator = torch.Generator(device=device).manual_seed(seed)
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    was_training = flow.training
    flow.eval()
    with torch.no_grad():
        for levels, labels in loader:
            levels = levels.to(device)
            y = labels.to(device) if conditional else None
            per_image = torch.zeros(levels.shape[0], dtype=torch.float64, device=device)
            for _ in range(draws):
                x = dequantize(levels, n_bins, generator=generator)
                per_image += flow.bits_per_dim(x, n_bins, y).double()
            per_image /= draws
            sums += torch.stack([per_image.sum(), per_image.pow(2).sum(),
                                 per_image.new_tensor(float(len(per_image)))])
    flow.train(was_training)
    return sums


def summarize(sums: Tensor, draws: int) -> BpdResult:
    """:class:`BpdResult` from ``[sum b, sum b^2, N]``: ``s = sqrt((sum b^2 - N m^2)/(N-1))/sqrt(N)``."""
    total, squares, count = (float(v) for v in sums.cpu())
    if count < 1:
        raise ValueError("no images to evaluate")
    mean = total / count
    variance = max(squares - count * mean * mean, 0.0) / (count - 1) if count > 1 else math.nan
    return BpdResult(mean, math.sqrt(variance / count), int(count), draws)


def evaluate_bpd(
    flow: Flow, dataset: Dataset, n_bins: int, *, draws: int = 8, batch_size: int = 256,
    device: torch.device = torch.device("cpu"), seed: int = 0, conditional: bool = False,
) -> BpdResult:
    """Bits/dim of ``flow`` on ``dataset`` in one process (see :func:`bpd_sums`)."""
    sums = bpd_sums(flow, dataset, n_bins, draws=draws, batch_size=batch_size, device=device,
                    seed=seed, conditional=conditional)
    return summarize(sums, draws)
