"""The model folder's ``config.json``: one record for every model on disk.

A model folder (a run's checkpoint, an exported model, a converted one)::

    config.json              {"format": "glowflow.model/2", "name": ...,
                              "family": a registry name (glowflow.families),
                              "config": the family's complete config (alone it rebuilds the model),
                              "data": DataSpec (dataset, shape, n_bins, classes, loading),
                              "dequantizer": {"kind": "uniform"} or the learned q(u | x)'s settings,
                              "provenance": where the weights came from (a run: its train config
                                            and step; a conversion: the source file),
                              "metrics": measured results and how,
                              "parameters": the parameter count,
                              "noise_augment": the sigma of training's noise augmentation (0: none)}
    model.safetensors        the flow's state_dict, signed (sha256 of its tensors)
    dequantizer.safetensors  a learned dequantizer's weights, when there is one
    README.md                the card, generated from config.json (:mod:`.card`)

A checkpoint adds only the training state (``state.pt``, ``ema.safetensors``). Folders of the
first format (``glowflow.pretrained/1``: a ``glow`` table, always Glow, uniform dequantization)
are read as this record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Optional

from ..config_base import FlowConfig
from ..errors import ConfigError, MissingFileError, ModelFileError
from ..families import config_from_dict, family_of
from .data import DataSpec

FORMAT = "glowflow.model/2"
LEGACY_FORMAT = "glowflow.pretrained/1"
CONFIG_FILE, WEIGHTS_FILE, CARD_FILE = "config.json", "model.safetensors", "README.md"
DEQUANTIZER_FILE = "dequantizer.safetensors"
FILES = (CONFIG_FILE, WEIGHTS_FILE, DEQUANTIZER_FILE, CARD_FILE)
"""Every file a model folder may hold (what the Hub transport fetches and sends)."""
UNIFORM = {"kind": "uniform"}


def dequantizer_record(kind: str, steps: int = 4, hidden: int = 32) -> dict[str, Any]:
    """``config.json``'s ``dequantizer``: uniform, or a learned ``q(u | x)`` with its size."""
    return dict(UNIFORM) if kind == "uniform" else {"kind": kind, "steps": steps, "hidden": hidden}


def make_record(
    config: FlowConfig,
    data: DataSpec,
    parameters: int,
    dequantizer: Optional[Mapping[str, Any]] = None,
    provenance: Optional[Mapping[str, Any]] = None,
    metrics: Optional[Mapping[str, Any]] = None,
    name: str = "glowflow model",
    noise_augment: float = 0.0,
) -> dict[str, Any]:
    """The ``config.json`` record of a model of any family (its runtime fields at their
    defaults: :meth:`~glowflow.config_base.FlowConfig.architecture`). ``noise_augment`` is the
    sigma of the Gaussian noise its training added (its density is of the noisy data, and its
    samples are denoised); 0 for a likelihood model."""
    family = family_of(config)
    shape_fields = config.fields_with_role("shape")
    if shape_fields and tuple(getattr(config, shape_fields[0])) != tuple(data.shape):
        raise ConfigError(
            f"the data's shape {data.shape} is not the model's {getattr(config, shape_fields[0])}"
        )
    classes = [getattr(config, f) for f in config.fields_with_role("classes")]
    if classes and classes[0] is not None and data.num_classes != classes[0]:
        raise ConfigError(
            f"the model is conditional on {classes[0]} classes, the data has {data.num_classes}"
        )
    return {
        "format": FORMAT,
        "name": name,
        "family": family.name,
        "config": config.architecture().to_dict(),
        "data": data.to_dict(),
        "dequantizer": dict(dequantizer or UNIFORM),
        "provenance": dict(provenance or {}),
        "metrics": dict(metrics or {}),
        "parameters": int(parameters),
        "noise_augment": float(noise_augment),
    }


def is_model_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a glowflow ``config.json`` (this format or the first)."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("format") in (FORMAT, LEGACY_FORMAT)
    except (OSError, ValueError, AttributeError):
        return False


def read_record(folder: Path) -> dict[str, Any]:
    """``config.json`` of a model folder, checked (a first-format record comes back in this
    format); errors name the file."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise MissingFileError(f"{path} is missing: {folder} is not a glowflow model folder")
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelFileError(f"{path} is not readable JSON: {error}") from None
    found = record.get("format") if isinstance(record, dict) else None
    if found == LEGACY_FORMAT:
        record = _from_legacy(record, path)
    elif isinstance(found, str) and _is_newer(found):
        raise ModelFileError(
            f"{path} was written by a newer glowflow (format {found!r}; this one reads "
            f"{FORMAT!r}): upgrade glowflow to load it"
        )
    elif found != FORMAT:
        raise ModelFileError(
            f"{path} is not a glowflow model config (format {found!r}, expected {FORMAT!r})"
        )
    for key in ("config", "data", "dequantizer", "provenance", "metrics"):
        if not isinstance(record.get(key), dict):
            raise ModelFileError(f"{path} lacks its {key!r} table")
    if not isinstance(record.get("family"), str):
        raise ModelFileError(f"{path} lacks its 'family' entry")
    return record


def _is_newer(found: str) -> bool:
    """Whether ``found`` is a later version of this format (``glowflow.model/3``, ...)."""
    name, _, version = found.rpartition("/")
    ours = FORMAT.rpartition("/")
    return name == ours[0] and version.isdigit() and int(version) > int(ours[2])


def _from_legacy(record: dict[str, Any], path: Path) -> dict[str, Any]:
    """A ``glowflow.pretrained/1`` record (Glow only, uniform dequantization) as this format."""
    if not isinstance(record.get("glow"), dict):
        raise ModelFileError(f"{path} lacks its 'glow' table")
    return {
        **{k: v for k, v in record.items() if k not in ("glow", "source")},
        "format": FORMAT,
        "family": "glow",
        "config": record["glow"],
        "dequantizer": dict(UNIFORM),
        "provenance": record.get("source") or {},
        "metrics": record.get("metrics") or {},
    }


def record_config(record: Mapping[str, Any], where: str) -> FlowConfig:
    """The family config a record describes; ``ConfigError`` naming ``where`` and the field."""
    return config_from_dict(record["family"], record["config"], where)


def record_data(record: Mapping[str, Any], where: str) -> DataSpec:
    """The data a record describes."""
    return DataSpec.from_dict(record["data"], where)
