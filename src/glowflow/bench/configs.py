"""The named benchmark models and the one function that builds a model from a measuring
process's spec.

A configuration is any registered family's config (:mod:`glowflow.families`); ``NAME@K<n>`` is
Glow configuration ``NAME`` with ``n`` flow steps per level, and ``FAMILY-digits`` is each
other family's training template on the digits' shape. A spec (the JSON a measuring process
gets, see :mod:`glowflow.bench.run`) carries the configuration as ``spec["config"]`` (its
``to_dict()``), its family as ``spec["family"]`` and the memory mode as ``spec["mode"]``;
:func:`spec_config` reads them back and :func:`build_model` makes the flow, so that the rest
of the benchmark never depends on which kind of model it measures.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..config import GlowConfig
from ..config_base import FlowConfig
from ..errors import ConfigError
from ..families import FAMILIES, build, config_from_dict, family_of
from ..flow import Flow
from ..training.config import resolve_config


def _preset_model(preset: str, shape: tuple[int, int, int]) -> GlowConfig:
    """The model of a ``glowflow train`` preset, on images of ``shape``."""
    return resolve_config(preset).model.replace(output_shape=shape, seed=0)


CONFIGS: dict[str, FlowConfig] = {
    # the models of the `glowflow train` presets of the same names (8x8 digits; the paper's
    # CIFAR-10 model), read from the presets themselves
    "digits": _preset_model("digits", (1, 8, 8)),
    "cifar10": _preset_model("cifar10", (3, 32, 32)),
    "cifar10-small": GlowConfig(
        output_shape=(3, 32, 32),
        num_glow_blocks=3,
        num_steps_per_block=8,
        hidden_channels=128,
        coupling="affine",
        permutation="invconv_lu",
        seed=0,
    ),
    "tiny": GlowConfig(
        output_shape=(1, 8, 8), num_glow_blocks=2, num_steps_per_block=2, hidden_channels=8, seed=0
    ),  # smoke tests
    **{
        f"{name}-digits": family.template.replace(event_shape=(1, 8, 8), seed=0)
        for name, family in FAMILIES.items()
        if name != "glow"
    },
}
"""The named benchmark models: Glow's as :class:`~glowflow.GlowConfig` s, then every other
family's digits-sized template."""


def get_config(name: str) -> FlowConfig:
    """A configuration by name: one of :data:`CONFIGS`, optionally ``@K<steps>`` for another
    depth (``"cifar10-small@K32"``); :class:`~glowflow.errors.ConfigError` for anything else.

    >>> get_config("cifar10-small@K32").num_steps_per_block
    32
    """
    base, _, depth = name.partition("@K")
    if base not in CONFIGS:
        raise ConfigError(
            f"unknown benchmark config {name!r}; choose from {tuple(CONFIGS)}, "
            "optionally with @K<steps per level>"
        )
    if not depth:
        return CONFIGS[base]
    if not isinstance(CONFIGS[base], GlowConfig):
        raise ConfigError(f"config {name!r}: @K<steps> sets a Glow's depth, and {base} is no Glow")
    if not depth.isdigit() or int(depth) < 1:
        raise ConfigError(f"config {name!r}: the depth after @K must be a positive integer")
    return CONFIGS[base].replace(num_steps_per_block=int(depth))


def spec_config(spec: Mapping[str, Any]) -> FlowConfig:
    """The configuration a spec names, in the spec's memory mode (for a family that has
    memory modes: Glow)."""
    config = config_from_dict(spec.get("family", "glow"), spec["config"])
    if "memory_mode" in config.field_names():
        config = config.replace(memory_mode=spec["mode"])
    return config


def event_shape(config: FlowConfig) -> tuple[int, ...]:
    """The data shape of a benchmark configuration."""
    (field,) = config.fields_with_role("shape")
    return tuple(getattr(config, field))


def spec_family(config: FlowConfig) -> str:
    """The registry name of a configuration's family, for its spec."""
    return family_of(config).name


def build_model(config: FlowConfig) -> Flow:
    """The flow glowflow measures for ``config`` (on the CPU, not yet initialized)."""
    return build(config)
