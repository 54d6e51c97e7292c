"""Bits/dim on a dataset: mean and standard error over images, averaged over dequantization
draws (the variational bound) or combined by importance weighting."""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from ..errors import ConfigError
from ..flow import Flow
from ..metrics import bits_per_dim
from ..precision import network_precision
from . import distributed
from .config import TrainConfig
from .recovery import TrainingDiverged


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


BOUND_KINDS = ("uniform", "variational", "importance-weighted")
"""The bounds on ``-log2 P(x) / D`` a bits/dim figure can be: the uniform-dequantization bound
``E_u[-log2 p(x + u)] / D``, the variational bound ``E_q[-log2 (p(x + u) / q(u | x))] / D`` of a
learned ``q``, and the importance-weighted bound ``-log2 (1/K sum_k p(x + u_k) / q(u_k | x)) / D``
(Burda et al. 2016) over ``K`` draws of either, which tightens as ``K`` grows."""


@dataclass(frozen=True)
class Bound:
    """A bits/dim figure and the bound it is: ``kind`` one of :data:`BOUND_KINDS`, over
    ``result.draws`` dequantization draws per image (``K`` for the importance-weighted one)."""

    kind: str
    result: BpdResult

    @property
    def name(self) -> str:
        """``"variational bound, 8 draws"``, ``"importance-weighted bound, K=16"``, ..."""
        if self.kind == "importance-weighted":
            return f"importance-weighted bound, K={self.result.draws}"
        kind = "uniform-dequantization" if self.kind == "uniform" else self.kind
        draws = self.result.draws
        return f"{kind} bound, {draws} draw{'s' * (draws != 1)}"

    def to_dict(self) -> dict[str, Any]:
        return {"bound": self.kind, **self.result.to_dict()}


def tightest(bounds: Sequence[Bound]) -> Bound:
    """The smallest figure of ``bounds``: every one is a valid upper bound on the bits/dim of
    the discrete data, so the smallest measured is the tightest."""
    return min(bounds, key=lambda bound: bound.result.bpd)


def bpd_sums(
    flow: Flow,
    dataset: Dataset,
    dequantizer: nn.Module,
    *,
    draws: int,
    batch_size: int,
    device: torch.device,
    seed: int,
    conditional: bool,
    indices: Optional[Sequence[int]] = None,
    importance_weighted: bool = False,
    precision: str = "fp32",
    progress: Optional[str] = None,
) -> Tensor:
    """``[sum_i b_i, sum_i b_i^2, N]`` (float64, on ``device``) over the images ``indices``.

    With ``w_id = log p(x_id) - log q(u_id | k_i)`` for the ``d``-th of ``draws`` dequantizations
    of image ``i`` (from a generator seeded with ``seed``): ``b_i`` is the mean over draws of
    ``bits_per_dim(w_id)`` (the variational bound), or with ``importance_weighted``
    ``bits_per_dim(log mean_d exp w_id)`` (the importance-weighted bound with ``K = draws``).
    Summed (not averaged) so shards of a distributed evaluation combine by ``all_reduce``.
    Runs in eval mode, then restores the modes; the networks compute in ``precision``
    (:mod:`glowflow.precision`), the log-dets and prior terms in float32. ``progress``: a label
    for a progress bar over the batches on stderr (``None``: silent).
    """
    subset = Subset(dataset, list(indices)) if indices is not None else dataset
    loader = DataLoader(subset, batch_size=batch_size, shuffle=False)
    generator = torch.Generator(device=device).manual_seed(seed)
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    modes = (flow.training, dequantizer.training)
    flow.eval()
    dequantizer.eval()
    n_bins = dequantizer.n_bins
    with torch.no_grad(), network_precision(precision, device):
        batches = (
            loader
            if progress is None
            else tqdm(loader, desc=progress, unit="batch", file=sys.stderr, leave=False)
        )
        for levels, labels in batches:
            levels = levels.to(device)
            y = labels.to(device) if conditional else None
            weights = []
            for _ in range(draws):
                x, log_q = dequantizer(levels, dequantizer.noise(levels, generator))
                weights.append(flow.log_prob(x, y) - log_q)
            if importance_weighted:
                log_mean = torch.logsumexp(torch.stack(weights).double(), dim=0) - math.log(draws)
                per_image = bits_per_dim(log_mean, flow.num_dims, n_bins)
            else:
                per_image = (
                    sum(bits_per_dim(w, flow.num_dims, n_bins).double() for w in weights) / draws
                )
            sums += torch.stack(
                [
                    per_image.sum(),
                    per_image.pow(2).sum(),
                    per_image.new_tensor(float(len(per_image))),
                ]
            )
    flow.train(modes[0])
    dequantizer.train(modes[1])
    return sums


def summarize(sums: Tensor, draws: int) -> BpdResult:
    """:class:`BpdResult` from ``[sum b, sum b^2, N]``: ``s = sqrt((sum b^2 - N m^2)/(N-1))/sqrt(N)``."""
    total, squares, count = (float(v) for v in sums.cpu())
    if count < 1:
        raise ConfigError("no images to evaluate")
    mean = total / count
    variance = max(squares - count * mean * mean, 0.0) / (count - 1) if count > 1 else math.nan
    return BpdResult(mean, math.sqrt(variance / count), int(count), draws)


def evaluate_bpd(
    flow: Flow,
    dataset: Dataset,
    dequantizer: nn.Module,
    *,
    draws: int = 8,
    batch_size: int = 256,
    device: Union[str, torch.device] = "cpu",
    seed: int = 0,
    conditional: bool = False,
    importance_weighted: bool = False,
    precision: str = "fp32",
    progress: Optional[str] = None,
) -> BpdResult:
    """Bits/dim of ``flow`` on ``dataset`` in one process (see :func:`bpd_sums`)."""
    sums = bpd_sums(
        flow,
        dataset,
        dequantizer,
        draws=draws,
        batch_size=batch_size,
        device=torch.device(device),
        seed=seed,
        conditional=conditional,
        importance_weighted=importance_weighted,
        precision=precision,
        progress=progress,
    )
    return summarize(sums, draws)


def shared_bpd(
    flow: Flow,
    dataset: Dataset,
    dequantizer: nn.Module,
    draws: int,
    config: TrainConfig,
    process: distributed.Process,
    importance_weighted: bool = False,
) -> BpdResult:
    """Bits/dim (the dequantization bound, or with ``importance_weighted`` that bound with
    ``K = draws``) of ``flow`` and ``dequantizer`` on ``dataset`` during a run, each process
    taking every ``world``-th image and the sums added over them; the run's
    ``eval_batch_size``, ``seed`` and ``conditional``."""
    indices = range(process.rank, len(dataset), process.world_size)
    sums = bpd_sums(
        flow,
        dataset,
        dequantizer,
        draws=draws,
        batch_size=config.eval_batch_size,
        device=process.device,
        seed=config.seed,
        conditional=config.conditional,
        indices=indices,
        importance_weighted=importance_weighted,
    )
    return summarize(distributed.all_reduce_sum(sums, process), draws)


def test_bounds(
    flow: Flow,
    dequantizer: nn.Module,
    dataset: Dataset,
    config: TrainConfig,
    process: distributed.Process,
    label: str,
) -> tuple[Bound, ...]:
    """A run's final test bits/dim of one checkpoint (``label``: ``"best"``, ``"last"``): the
    run's dequantization bound with ``final_eval_draws`` draws, and the importance-weighted
    bound with ``K = final_iw_samples`` when asked. A
    :class:`~.recovery.TrainingDiverged` naming the checkpoint when one is not finite."""
    draws = config.final_eval_draws
    bounds = [
        Bound(config.dequantization, shared_bpd(flow, dataset, dequantizer, draws, config, process))
    ]
    if config.final_iw_samples:
        weighted = shared_bpd(
            flow, dataset, dequantizer, config.final_iw_samples, config, process, True
        )
        bounds.append(Bound("importance-weighted", weighted))
    for bound in bounds:
        if not math.isfinite(bound.result.bpd):
            raise TrainingDiverged(
                f"the {label} checkpoint's test bits/dim ({bound.name}) is {bound.result.bpd}; "
                f"start a fresh run with a lower --lr (this run: {config.lr:g})"
            )
    return tuple(bounds)
