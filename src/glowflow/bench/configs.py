"""The named benchmark models and the one function that builds a model from a measuring
process's spec.

A configuration is a :class:`~glowflow.GlowConfig`; ``NAME@K<n>`` is configuration ``NAME``
with ``n`` flow steps per level. A spec (the JSON a measuring process gets, see
:mod:`glowflow.bench.run`) carries the configuration as ``spec["config"]`` (its ``to_dict()``)
and the memory mode as ``spec["mode"]``; :func:`spec_config` reads them back and
:func:`build_model` makes the flow, so that the rest of the benchmark never depends on which
kind of model it measures.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..config import GlowConfig
from ..errors import ConfigError
from ..flow import Flow
from ..glow import Glow
from ..training.config import resolve_config


def _preset_model(preset: str, shape: tuple[int, int, int]) -> GlowConfig:
    """The model of a ``glowflow train`` preset, on images of ``shape``."""
    return resolve_config(preset).model.replace(output_shape=shape, seed=0)


CONFIGS: dict[str, GlowConfig] = {
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
}
"""The named benchmark models, as :class:`~glowflow.GlowConfig` s."""


def get_config(name: str) -> GlowConfig:
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
    if not depth.isdigit() or int(depth) < 1:
        raise ConfigError(f"config {name!r}: the depth after @K must be a positive integer")
    return CONFIGS[base].replace(num_steps_per_block=int(depth))


def spec_config(spec: Mapping[str, Any]) -> GlowConfig:
    """The configuration a spec names, in the spec's memory mode."""
    return GlowConfig.from_dict(spec["config"]).replace(memory_mode=spec["mode"])


def build_model(config: GlowConfig) -> Flow:
    """The flow glowflow measures for ``config`` (on the CPU, not yet initialized)."""
    return Flow(Glow(config))
