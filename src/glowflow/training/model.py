"""Building the flow a :class:`~glowflow.training.config.TrainConfig` describes, and its
data-dependent initialization."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..config_base import FlowConfig
from ..data import dequantize
from ..dequantization import make_dequantizer
from ..errors import ConfigError
from ..families import build
from ..flow import Flow
from ..store.data import DataSpec
from .batches import noise_generator, take_images
from .config import TrainConfig


def model_config(config: TrainConfig, data: DataSpec) -> FlowConfig:
    """The run's complete model config: ``config.model`` with the fields the run decides
    filled in (by their roles, :mod:`glowflow.config_base`): the data's shape, the run's seed
    and, with ``config.conditional``, the data's class count."""
    model = config.model
    changes: dict[str, Any] = {name: data.shape for name in model.fields_with_role("shape")}
    changes.update({name: config.seed for name in model.fields_with_role("seed")})
    classes = model.fields_with_role("classes")
    if config.conditional:
        if not data.num_classes:
            raise ConfigError(
                f"conditional=true needs a labelled dataset; {data.dataset} has no labels"
            )
        if not classes:
            raise ConfigError(
                f"conditional=true: the {config.family} family has no class-conditional model"
            )
    changes.update({name: data.num_classes if config.conditional else None for name in classes})
    return model.replace(**changes)


def build_flow(config: TrainConfig, data: DataSpec) -> Flow:
    """A fresh (not yet data-initialized) flow of the run's family and
    :func:`model_config`."""
    return build(model_config(config, data))


def build_dequantizer(config: TrainConfig, data: DataSpec) -> nn.Module:
    """The run's dequantizer (:mod:`glowflow.dequantization`), freshly initialized."""
    return make_dequantizer(
        config.dequantization,
        data.shape,
        data.n_bins,
        config.dequantizer_steps,
        config.dequantizer_hidden,
    )


def run_data(config: TrainConfig, dataset: Any) -> DataSpec:
    """The record of a run's data: the loaded training split of ``config.dataset`` and how the
    run loads it."""
    return DataSpec.of(
        dataset,
        config.dataset,
        image_size=config.image_size,
        n_bits=config.n_bits,
        val_size=config.val_size,
        data_root=config.data_root,
    )


def initialize_from_data(
    flow: Flow, train_set: Any, config: TrainConfig, n_bins: int, device: torch.device
) -> None:
    """Data-dependent ActNorm initialization on ``config.init_images`` seeded training images
    (the labels too for a conditional run), dequantized with a generator of their own."""
    levels, labels = take_images(train_set, config.init_images, config.seed)
    generator = noise_generator(device, config.seed, -1, 0, 1)
    x = dequantize(levels.to(device), n_bins, generator=generator)
    flow.initialize(x, labels.to(device) if config.conditional else None)
