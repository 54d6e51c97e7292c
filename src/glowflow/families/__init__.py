"""The family registry: every flow family glowflow trains, saves, loads and benchmarks.

A family declares, in one module of this package, its config dataclass, its builder, its
presets and its converters as a :class:`~glowflow.families.base.Family`; adding a family is
that module plus its entry in :data:`FAMILIES`. The trainer, the model folder, the CLI, OOD
and the benchmark reach the families only through this registry.

>>> sorted(FAMILIES)
['glow', 'iaf', 'jet', 'maf', 'nice', 'realnvp', 'tarflow']
>>> family_of(FAMILIES["nice"].template).name
'nice'
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from ..config_base import FlowConfig
from ..errors import ConfigError
from ..flow import Flow
from . import autoregressive, glow, jet, nice, realnvp, tarflow
from .base import Family

FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        glow.FAMILY,
        nice.FAMILY,
        realnvp.FAMILY,
        autoregressive.MAF,
        autoregressive.IAF,
        tarflow.FAMILY,
        jet.FAMILY,
    )
}
"""The registered families by name; Glow first (the default)."""

DEFAULT_FAMILY = "glow"

PRESETS: dict[str, dict[str, Any]] = {
    name: {"family": family.name, **settings}
    for family in FAMILIES.values()
    for name, settings in family.presets.items()
}
"""Every family's training presets by name, each with its ``family`` entry: the paper's
settings (or the family's own, for the digits data)."""

BEST_RECIPES: dict[str, dict[str, Any]] = {
    name: dict(settings)
    for family in FAMILIES.values()
    for name, settings in family.best_recipes.items()
}
"""What the recipe search (``benchmarks/recipe_search.py``) chose for a preset, by preset name:
settings applied over the preset's unless ``--recipe paper``."""

TIME_RECIPES: dict[str, dict[str, Any]] = {
    name: dict(settings)
    for family in FAMILIES.values()
    for name, settings in family.time_recipes.items()
}
"""What the recipe search chose for a preset under a wall-clock budget (``--max-time`` without
``--max-steps``), by preset name: applied over :data:`BEST_RECIPES` then."""

RECIPES: dict[str, str] = {
    "best": "the preset with the settings the recipe search chose on validation for its "
    "default budget, or for a --max-time budget given without --max-steps (where it was "
    "searched: the README's recipe tables)",
    "paper": "the preset's paper settings alone (the plain Glow of the paper for digits), "
    "for ablations and the paper's hyper-parameters",
}
"""The recipes a preset is taken with, and what each means (``--recipe``)."""


def get_family(name: str, where: Optional[str] = None) -> Family:
    """The family registered as ``name``; ``ConfigError`` naming the known ones (and
    ``where``, a file say) otherwise."""
    if name not in FAMILIES:
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}unknown flow family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]


def family_of(config: FlowConfig) -> Family:
    """The family whose config class ``config`` is."""
    for family in FAMILIES.values():
        if type(config) is family.config_class:
            return family
    raise ConfigError(f"no registered family takes a {type(config).__name__}")


def config_from_dict(
    family: str, values: Mapping[str, Any], where: Optional[str] = None
) -> FlowConfig:
    """Family ``family``'s config from a JSON table (``config.json``'s ``config``)."""
    return get_family(family, where).config_class.from_dict(values, where)


def build(config: FlowConfig) -> Flow:
    """The fresh :class:`~glowflow.Flow` of any family's ``config``."""
    return family_of(config).build(config)


__all__ = [
    "DEFAULT_FAMILY",
    "FAMILIES",
    "PRESETS",
    "BEST_RECIPES",
    "RECIPES",
    "TIME_RECIPES",
    "Family",
    "build",
    "config_from_dict",
    "family_of",
    "get_family",
]
