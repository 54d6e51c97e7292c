"""The family record: what one flow family declares to the rest of glowflow."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..config_base import FlowConfig
from ..errors import ConfigError
from ..flow import Flow

LONG_RUN: dict[str, Any] = dict(
    threads=0,
    lr_schedule="constant",
    warmup_steps=5000,
    init_images=256,
    log_every=100,
    eval_every=5000,
    sample_every=5000,
    checkpoint_every=5000,
    num_workers=min(4, os.cpu_count() or 1),  # never more loader processes than cores
)
"""Run settings the presets for real datasets share: the paper's constant learning rate after
warm-up, GPU-sized cadences, every CPU thread."""


@dataclass(frozen=True)
class Family:
    """One flow family, as the registry (:mod:`glowflow.families`) names it.

    Attributes:
        name: the registry name (``glowflow train --family NAME``, ``config.json``'s
            ``family``).
        summary: one line for help texts and model cards.
        config_class: the family's frozen, torch-free config dataclass (a
            :class:`~glowflow.config_base.FlowConfig`): its fields' help, choices, roles and
            validation.
        builder: ``config -> Flow``, a fresh (not data-initialized) model.
        template: the model a training run starts from when no preset of the family says
            otherwise: its shape, class count and seed are left for the run to fill in
            (fields with those roles), and it is small enough for the digits data on 2 cores.
        presets: training presets, ``{name: settings}``, run and model settings by their flat
            names (see :mod:`glowflow.training.config`).
        converters: the ``glowflow convert --from`` sources that produce this family.
        best_recipes: ``{preset: settings}`` the recipe search chose on validation for some of
            the presets at their default budget, applied over them unless the paper recipe is
            asked for.
        time_recipes: ``{preset: settings}`` the search chose for a wall-clock budget
            (``--max-time`` without ``--max-steps``), applied over the best recipe then.
    """

    name: str
    summary: str
    config_class: type[FlowConfig]
    builder: Callable[[Any], Flow]
    template: FlowConfig
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    converters: tuple[str, ...] = ()
    best_recipes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    time_recipes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def build(self, config: FlowConfig) -> Flow:
        """The :class:`~glowflow.Flow` of ``config`` (which must be this family's), with
        :attr:`Flow.config` set to it."""
        if not isinstance(config, self.config_class):
            raise ConfigError(
                f"family {self.name} builds from a {self.config_class.__name__}, got a "
                f"{type(config).__name__}"
            )
        flow = self.builder(config)
        flow.config = config
        return flow
