"""Fine-tuning: a new run that starts from another model's weights (``--init-from MODEL``).

The new run has its own settings and run folder; only its starting weights come from
``MODEL`` (a run folder, a checkpoint, a model folder, ``pretrained:NAME`` or a hub id, as
:func:`~glowflow.store.load_model` reads them), in place of the data-dependent ActNorm
initialization. The two models must be the same function of the same data: the same family,
the same data shape and number of bins, and the same value of every config field but those
free to change (the seed, runtime choices and regularizers such as coupling dropout:
:data:`FREE_ROLES`). A learned dequantizer comes along when the run trains one of the same
settings; otherwise the run's dequantizer starts fresh.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..config_base import FlowConfig
from ..errors import ConfigError, MissingFileError, ModelFileError
from ..flow import Flow
from ..store import load_model
from ..store.data import DataSpec

FREE_ROLES = ("seed", "runtime", "regularization")
"""Config roles whose fields may differ between a fine-tuned run and the model it starts
from: they change neither the weights' meaning nor the density."""


def first_mismatch(source: FlowConfig, target: FlowConfig) -> Optional[str]:
    """The first field, in declaration order, in which ``target`` (the run's model) differs
    from ``source`` (the model it starts from), as ``"name: source -> run"``; ``None`` when they
    match on every field outside :data:`FREE_ROLES`."""
    for name in target.field_names():
        if target.role(name) in FREE_ROLES:
            continue
        theirs, ours = getattr(source, name), getattr(target, name)
        if theirs != ours:
            return f"{name}: {theirs!r} -> {ours!r}"
    return None


def start_from(
    model: str, flow: Flow, dequantizer: torch.nn.Module, data: DataSpec, device: torch.device
) -> str:
    """Load ``model``'s weights into the run's ``flow`` (and ``dequantizer`` when it learned
    one of the same settings); returns what was loaded, for the start-up line. A
    ``ConfigError`` naming ``model`` and the first mismatch when the architectures differ."""
    where = f"--init-from {model}"
    try:
        loaded = load_model(model, device)
    except (MissingFileError, ModelFileError) as error:
        raise type(error)(f"--init-from: {error}") from None
    if type(loaded.config) is not type(flow.config):
        raise ConfigError(
            f"{where} is a {loaded.family} model; this run trains "
            f"{type(flow.config).__name__}: give --family {loaded.family}"
        )
    if (loaded.data.shape, loaded.data.n_bins) != (data.shape, data.n_bins):
        raise ConfigError(
            f"{where} was trained on {loaded.data.dataset} images of shape "
            f"{loaded.data.shape} with {loaded.data.n_bins} bins; this run's {data.dataset} "
            f"data has {data.shape} with {data.n_bins}"
        )
    mismatch = first_mismatch(loaded.config, flow.config)
    if mismatch is not None:
        raise ConfigError(
            f"{where} has another architecture than this run ({mismatch}); give the model's "
            f"settings (its config.json) or train from scratch"
        )
    flow.load_state_dict(loaded.flow.state_dict())
    said = f"weights from {model} ({loaded.source}, step {loaded.step})"
    learned = loaded.dequantizer
    if learned.state_dict() and getattr(learned, "settings", None) == getattr(
        dequantizer, "settings", None
    ):
        dequantizer.load_state_dict(learned.state_dict())
        said += " (its learned dequantizer too)"
    return said
