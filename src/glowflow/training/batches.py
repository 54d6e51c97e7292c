"""Training batches that depend only on ``(seed, step, rank)``, so a resumed run sees the same data."""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ..errors import ConfigError
from . import distributed
from .config import TrainConfig


class StepBatches(Sampler[list[int]]):
    """An endless batch sampler starting at ``start_step``.

    Epoch ``e`` is :class:`DistributedSampler`'s shuffled shard for ``(seed, e, rank)`` with the
    incomplete batch dropped; step ``s`` takes batch ``s mod n`` of epoch ``s div n`` (``n``
    batches per epoch), so restarting at any step reproduces the uninterrupted order.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
    ) -> None:
        self.sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.batch_size = batch_size
        self.steps_per_epoch = self.sampler.num_samples // batch_size
        if self.steps_per_epoch < 1:
            raise ConfigError(
                f"batch_size {batch_size} is larger than the {self.sampler.num_samples} training "
                f"images each of the {world_size} process(es) gets"
            )
        self.start_step = start_step

    def __iter__(self) -> Iterator[list[int]]:
        epoch, offset = divmod(self.start_step, self.steps_per_epoch)
        while True:
            self.sampler.set_epoch(epoch)
            order = list(self.sampler)
            for index in range(offset, self.steps_per_epoch):
                yield order[index * self.batch_size : (index + 1) * self.batch_size]
            epoch, offset = epoch + 1, 0


def take_images(dataset: Dataset, count: int, seed: int) -> tuple[Tensor, Tensor]:
    """``count`` random training images ``(levels (N, C, H, W), labels (N,))``, seeded.

    Used for the data-dependent ActNorm initialization.
    """
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randperm(len(dataset), generator=generator)[:count].tolist()  # type: ignore[arg-type]
    items = [dataset[i] for i in indices]
    levels = torch.stack([torch.as_tensor(x) for x, _ in items])
    return levels, torch.stack([torch.as_tensor(y) for _, y in items])


def step_seed(seed: int, step: int, rank: int, world_size: int) -> int:
    """The seed of one step of one process: ``(seed * 1000003 + step * world + rank) mod 2^63``."""
    return (seed * 1_000_003 + step * world_size + rank) % (2**63)


def noise_generator(
    device: torch.device, seed: int, step: int, rank: int, world_size: int
) -> torch.Generator:
    """The dequantization generator of one step of one process, seeded from all three."""
    return torch.Generator(device=device).manual_seed(step_seed(seed, step, rank, world_size))


DROPOUT_STREAM = 2**62
"""Offset of the global generators' seeds from the dequantization noise's (another stream)."""


def seed_step_randomness(seed: int, step: int, rank: int, world_size: int) -> None:
    """Seed torch's global generators (a step's dropout masks) from the step alone, so that a
    resumed run draws the masks an uninterrupted one draws, whatever used the generators since
    the checkpoint (validations, sample grids, the best checkpoint's writing)."""
    torch.manual_seed((step_seed(seed, step, rank, world_size) + DROPOUT_STREAM) % (2**63))


def step_loader(
    dataset: Dataset,
    config: TrainConfig,
    process: distributed.Process,
    start_step: int,
    device: torch.device,
) -> DataLoader:
    """The run's training batches from step ``start_step`` on: :class:`StepBatches` (every
    process its own slice of each step's seeded batch) through a ``DataLoader`` with the run's
    ``num_workers``."""
    sampler = StepBatches(
        dataset,
        config.batch_size,
        config.seed,
        process.rank,
        process.world_size,
        start_step=start_step,
    )
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
    )
