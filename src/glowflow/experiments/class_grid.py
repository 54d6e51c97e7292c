"""Class-conditional sampling: one row of samples per class."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError
from ..flow import Flow
from .common import class_prior


def class_labels(
    num_classes: int, samples_per_class: int, classes: Optional[Sequence[int]] = None
) -> Tensor:
    """The labels of a class grid, ``(K n,)``: ``classes[k]`` (default: all ``num_classes`` in
    order) repeated ``n = samples_per_class`` times, row by row."""
    if samples_per_class < 1:
        raise ConfigError(f"samples_per_class must be >= 1, got {samples_per_class}")
    rows = list(range(num_classes)) if classes is None else [int(k) for k in classes]
    return torch.tensor(rows, dtype=torch.long).repeat_interleave(samples_per_class)


@torch.no_grad()
def class_grid(
    flow: Flow,
    samples_per_class: int = 8,
    temperature: float = 0.7,
    classes: Optional[Sequence[int]] = None,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """Samples of a class-conditional model, ``(K, n, C, H, W)``: row ``k`` is class ``classes[k]``.

    Args:
        flow: a model built with ``num_classes``.
        samples_per_class: ``n``, samples in each row.
        temperature: scale of the base normal (0.7 is the paper's choice).
        classes: the classes, one per row; default all of them in order.
        generator: random generator for reproducible grids.
    """
    prior = class_prior(flow)
    if prior is None:
        raise ConfigError("a class grid needs a class-conditional model (trained with num_classes)")
    labels = class_labels(prior.num_classes, samples_per_class, classes).to(prior.mean.device)
    samples = flow.sample(len(labels), temperature, labels, generator)
    return samples.unflatten(0, (len(labels) // samples_per_class, samples_per_class))
