"""The training configuration: one dataclass, named presets, and overrides from files or flags.

Resolution order (later wins): :class:`TrainConfig` defaults (the ``digits`` preset) <- the
preset's entries <- a JSON or TOML config file <- explicit overrides (command-line flags).
Every value is checked against the field's type; unknown names are errors that list them. The
model's fields come from the run family's config (:mod:`glowflow.families`; their help, choices
and validation too); the run's own fields carry theirs in this module's dataclass metadata.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from ..config_base import FlowConfig, option
from ..dequantization import DEQUANTIZATIONS
from ..errors import ConfigError, MissingFileError
from ..families import (
    BEST_RECIPES,
    DEFAULT_FAMILY,
    FAMILIES,
    PRESETS,
    RECIPES,
    TIME_RECIPES,
    get_family,
)
from ..precision import PRECISIONS

RETIRED_FIELDS = ("test_split",)
"""Fields older runs' configs hold and this version ignores: ``test_split`` (periodic
evaluations now use the validation split, the test set only the end)."""

MIN_INIT_IMAGES = 16
"""Fewest images the data-dependent ActNorm initialization accepts."""

SET_BY_RUN = ("shape", "classes", "seed")
"""Roles of the model fields a training run decides (:mod:`glowflow.config_base`): the data's
shape, its class count (with ``conditional``) and the run's ``seed``. Every other model field
is a ``train`` flag."""


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved as JSON with the run and every checkpoint.

    The model is a nested config of the run's ``family`` (``model``: a
    :class:`~glowflow.GlowConfig` for Glow); its fields are set by the same flat names as the
    run's own (``--num-steps-per-block 8``, ``hidden_channels = 96`` in a file) or as a nested
    ``model`` table. The defaults are the ``digits`` preset.
    ``batch_size`` is per process (the global batch under torchrun is ``batch_size * world``).
    """

    # run
    name: str = option("digits", "run name; the run folder defaults to runs/NAME")
    run_dir: str = option("", "run folder (empty: runs/NAME)")
    seed: int = option(0, "seed of the model initialization, data order and dequantization noise")
    deterministic: bool = option(
        False, "deterministic algorithms, so a resumed run repeats an uninterrupted one"
    )
    device: str = option("auto", "auto (CUDA when available), cpu or cuda", ("auto", "cpu", "cuda"))
    threads: int = option(1, "CPU threads for torch (0: torch's default, one per core)")
    precision: str = option(
        "fp32",
        "what the coupling and prior networks compute in while training (bf16, fp16: "
        "autocast; fp16 scales the loss); the flow's own arithmetic and log-dets stay "
        "fp32, and the run's evaluations and sample grids run in fp32",
        PRECISIONS,
    )
    compile: bool = option(False, "torch.compile the training objective (forward and backward)")
    # data
    dataset: str = option(
        "digits", "digits, mnist, fashion-mnist, cifar10, svhn, celeba or folder:PATH"
    )
    data_root: str = option("data", "folder holding (or receiving) the downloadable datasets")
    download: bool = option(False, "download the dataset if missing")
    image_size: Optional[int] = option(
        None, "resize (CelebA: center crop, then resize) to this size; none keeps it"
    )
    n_bits: Optional[int] = option(
        None, "reduce to this many bits per channel (5 in the paper's CelebA runs); none keeps it"
    )
    hflip: bool = option(False, "random horizontal flips of training images")
    val_size: int = option(
        200,
        "training images held out as the validation split (the last of the training part), "
        "which chooses the best checkpoint and early stopping; 0: no validation (CelebA "
        "uses its official validation partition)",
    )
    num_workers: int = option(0, "data loader worker processes")
    # model
    family: str = option(
        DEFAULT_FAMILY,
        "flow family: " + "; ".join(f.summary.split(":")[0] for f in FAMILIES.values()),
        tuple(FAMILIES),
    )
    model: FlowConfig = field(
        default=FAMILIES[DEFAULT_FAMILY].template,
        metadata={"help": "the family's model config", "choices": None, "role": None},
    )
    conditional: bool = option(False, "class-conditional top prior (needs a labelled dataset)")
    class_loss_weight: float = option(
        0.0, "weight of the cross-entropy on the top latent's class logits"
    )
    dequantization: str = option(
        "uniform",
        "uniform noise, or a learned variational q(u | x) trained jointly (Flow++; "
        "reports the variational bound)",
        DEQUANTIZATIONS,
    )
    noise_augment: float = option(
        0.0,
        "Gaussian noise sigma added to the dequantized training inputs (TarFlow's sampling "
        "mode: the model learns the density of the noisy data, and samples are denoised; 0: "
        "the likelihood mode). Validation and test bits/dim stay on clean data and are marked",
    )
    dequantizer_steps: int = option(4, "coupling steps of the variational dequantizer")
    dequantizer_hidden: int = option(32, "width of the variational dequantizer's networks")
    # optimization
    optimizer: str = option(
        "adam", "adam, adamw (decoupled weight decay) or adamax", ("adam", "adamw", "adamax")
    )
    weight_decay: float = option(0.0, "decoupled weight decay of adamw")
    lr: float = option(1e-3, "peak learning rate")
    warmup_steps: int = option(100, "linear learning-rate warm-up steps")
    lr_schedule: str = option(
        "cosine",
        "after warm-up: constant, or cosine decay to 0 at max_steps",
        ("constant", "cosine"),
    )
    max_grad_norm: float = option(50.0, "clip the gradient norm to this (<= 0: no clipping)")
    batch_size: int = option(64, "training images per step and process")
    max_steps: int = option(
        1000,
        "optimizer steps to train for (0: no step limit, the max_time budget alone; a "
        "max_time given without max_steps lifts the preset's step limit)",
    )
    max_time: float = option(
        0.0,
        "wall-clock budget in seconds (0: none): training stops when it is spent, and the "
        "learning-rate schedule follows the fraction spent; a resumed run continues it",
    )
    init_from: str = option(
        "",
        "start from the weights of MODEL (a run folder, checkpoint, model folder, "
        "pretrained:NAME or hub id) instead of the data-dependent initialization: a new run "
        "with its own settings, the same architecture ('' : from scratch)",
    )
    init_images: int = option(512, "training images for the data-dependent ActNorm initialization")
    ema_decay: float = option(
        0.0, "decay of an exponential moving average of the weights (0: none)"
    )
    nan_patience: int = option(5, "non-finite steps in a row before restoring the last checkpoint")
    nan_lr_factor: float = option(0.5, "learning-rate factor applied at each such restore")
    nan_max_restores: int = option(
        3, "restores without progress (most steps since skipped) before the run stops as diverged"
    )
    # evaluation, logging, checkpoints
    eval_batch_size: int = option(512, "images per evaluation batch")
    eval_every: int = option(
        100, "steps between validation evaluations (each may write the best checkpoint)"
    )
    validations: int = option(
        10,
        "validations spread evenly over the budget (max_steps or max_time, whichever is "
        "further along), each with a checkpoint and sample grids, so that a model is chosen "
        "however fast the machine; eval_every adds its own (0: eval_every alone)",
    )
    final_iw_samples: int = option(
        0,
        "K of the importance-weighted bound also measured in the final test evaluation (0: "
        "not); the tightest bound measured is the headline",
    )
    eval_draws: int = option(1, "dequantization draws per image in the validation evaluations")
    early_stopping: int = option(
        0, "stop after this many validation evaluations without improvement (0: never)"
    )
    test_every: int = option(
        0,
        "steps between test evaluations logged to metrics.csv (0: the test set is evaluated "
        "only at the end; it never chooses anything)",
    )
    final_eval_draws: int = option(8, "dequantization draws per test image in the final evaluation")
    log_every: int = option(25, "steps between metrics.csv rows")
    sample_every: int = option(500, "steps between sample grids")
    sample_count: int = option(64, "images per sample grid")
    sample_temperatures: tuple[float, ...] = option(
        (0.0, 0.5, 0.7, 1.0), "temperatures of the sample grids"
    )
    checkpoint_every: int = option(500, "steps between checkpoints")
    keep_checkpoints: int = option(2, "checkpoints kept (the newest)")
    tensorboard: bool = option(False, "also log to TensorBoard (RUN_DIR/tb)")
    progress: bool = option(True, "show a progress bar")

    def __post_init__(self) -> None:
        family = get_family(self.family, "TrainConfig.family")
        if isinstance(self.model, Mapping):
            self.model = family.config_class.from_dict(self.model, where="TrainConfig.model")
        if type(self.model) is not family.config_class:
            raise ConfigError(
                f"TrainConfig: family {self.family} takes a {family.config_class.__name__} "
                f"model, got a {type(self.model).__name__}"
            )
        for f in dataclasses.fields(self):
            choices = f.metadata["choices"]
            if choices is not None and getattr(self, f.name) not in choices:
                raise ConfigError(
                    f"{f.name} must be one of {choices}, got {getattr(self, f.name)!r}"
                )
        positive = (
            "batch_size",
            "eval_batch_size",
            "init_images",
            "log_every",
            "eval_every",
            "eval_draws",
            "final_eval_draws",
            "sample_every",
            "sample_count",
            "checkpoint_every",
            "keep_checkpoints",
            "nan_patience",
            "nan_max_restores",
            "dequantizer_steps",
            "dequantizer_hidden",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "threads",
            "val_size",
            "early_stopping",
            "test_every",
            "max_steps",
            "validations",
            "final_iw_samples",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for f in dataclasses.fields(self):
            values = getattr(self, f.name)
            for value in values if isinstance(values, tuple) else (values,):
                if isinstance(value, float) and not math.isfinite(value):
                    raise ConfigError(f"{f.name} must be a finite number, got {value}")
        if self.noise_augment < 0:
            raise ConfigError(f"noise_augment must be >= 0, got {self.noise_augment}")
        if self.max_time < 0:
            raise ConfigError(f"max_time must be >= 0 seconds, got {self.max_time}")
        if not (self.max_steps or self.max_time):
            raise ConfigError("max_steps 0 (no step limit) needs a max_time budget")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if min(self.sample_temperatures, default=0.0) < 0:
            raise ConfigError(f"sample_temperatures must be >= 0, got {self.sample_temperatures}")
        if self.init_images < MIN_INIT_IMAGES:
            raise ConfigError(
                f"init_images must be >= {MIN_INIT_IMAGES}: the data-dependent initialization "
                f"sets every ActNorm's scale from the batch's per-channel spread, which a few "
                f"images cannot estimate at the coarse levels (got {self.init_images})"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.class_loss_weight and not self.conditional:
            raise ConfigError("class_loss_weight needs conditional=true (the class logits)")
        if self.weight_decay < 0 or (self.weight_decay and self.optimizer != "adamw"):
            raise ConfigError(
                f"weight_decay must be >= 0 and needs optimizer adamw, got "
                f"{self.weight_decay} with {self.optimizer}"
            )
        if not 0.0 < self.nan_lr_factor <= 1.0:
            raise ConfigError(f"nan_lr_factor must be in (0, 1], got {self.nan_lr_factor}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the run's fields, its ``family`` and the nested ``model`` (tuples
        become lists)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["model"] = self.model.to_dict()
        return json.loads(json.dumps(values))

    def value(self, name: str) -> Any:
        """A settable field's value by its flat name: a run field, else a model field."""
        return getattr(self if name in run_field_types() else self.model, name)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "config") -> "TrainConfig":
        """Build from a (possibly partial) mapping of run and model fields, flat or with a
        nested ``model`` table, type-checking every entry; the model's fields are those of
        the ``family`` entry's config (Glow's when there is none). Retired fields of older
        runs (:data:`RETIRED_FIELDS`) are ignored."""
        values = {k: v for k, v in values.items() if k not in RETIRED_FIELDS}
        family = family_named_in(values, where)
        run, model = check_values(values, where, family)
        template = get_family(family).template
        run["family"] = family
        return dataclasses.replace(cls(), **run, model=template.replace(**model))


RESUME_MAY_CHANGE = (
    "max_steps",
    "max_time",
    "run_dir",
    "device",
    "threads",
    "num_workers",
    "data_root",
    "download",
    "progress",
    "tensorboard",
    "eval_batch_size",
    "compile",
)
"""Settings a resumed run may change: how long it trains (a cosine schedule stretches to the
new ``max_steps``), where it runs and how it shows progress. Everything else is the run's."""


def resume_config(saved: TrainConfig, given: Mapping[str, Any], where: str) -> TrainConfig:
    """The config of a resumed run: the run's ``saved`` config with the ``given`` settings
    (flags, file entries, preset entries) applied where they may change
    (:data:`RESUME_MAY_CHANGE`). A given setting that differs from the run's and may not
    change is a ``ConfigError`` naming each conflict."""
    given = dict(given)
    family = given.pop("family", saved.family)
    if family != saved.family:
        raise ConfigError(
            f"{where}: resuming keeps the run's family {saved.family!r}, not {family!r}; start "
            f"a fresh run (another --run-dir) to train another family"
        )
    run, model = check_values(given, where, saved.family)
    conflicts = [
        f"{key}={value!r} (the run has {saved.value(key)!r})"
        for key, value in {**run, **model}.items()
        if key not in RESUME_MAY_CHANGE and value != saved.value(key)
    ]
    if conflicts:
        raise ConfigError(
            f"{where}: resuming keeps the run's settings; these differ: "
            f"{', '.join(conflicts)}. Only {', '.join(RESUME_MAY_CHANGE)} may change "
            f"on resume; start a fresh run (another --run-dir) to change the rest"
        )
    return dataclasses.replace(saved, **{k: v for k, v in run.items() if k in RESUME_MAY_CHANGE})


def resume_conflicts(saved: TrainConfig, config: TrainConfig) -> list[str]:
    """The settings in which ``config`` differs from the run's ``saved`` one and may not."""
    if saved.family != config.family:
        return [f"family: {saved.family!r} -> {config.family!r}"]
    return [
        f"{name}: {saved.value(name)!r} -> {config.value(name)!r}"
        for name in field_types(saved.family)
        if name not in RESUME_MAY_CHANGE and saved.value(name) != config.value(name)
    ]


def check_resumable(saved: TrainConfig, config: TrainConfig, folder: Any) -> None:
    """A ``ConfigError`` naming ``folder`` and every setting in which ``config`` differs from
    the run's ``saved`` one where a resume may not change it."""
    conflicts = resume_conflicts(saved, config)
    if conflicts:
        raise ConfigError(
            f"{folder} was trained with other settings ({'; '.join(conflicts)}); a resumed "
            f"run keeps the run's settings except {', '.join(RESUME_MAY_CHANGE)}"
        )


def help_text(name: str, family: str = DEFAULT_FAMILY) -> str:
    """The help of a settable field: a run field of :class:`TrainConfig` or a model field of
    ``family``'s config."""
    if name in run_field_types():
        return TrainConfig.__dataclass_fields__[name].metadata["help"]
    return get_family(family).config_class.help(name)


def choices_of(name: str, family: str = DEFAULT_FAMILY) -> Optional[tuple[str, ...]]:
    """The choices of a settable field, or ``None``."""
    if name in run_field_types():
        return TrainConfig.__dataclass_fields__[name].metadata["choices"]
    return get_family(family).config_class.choices(name)


def run_field_types() -> dict[str, Any]:
    """``{name: type}`` of the run's own fields (``family`` included, ``model`` not)."""
    types = typing.get_type_hints(TrainConfig)
    del types["model"]
    return types


def model_field_types(family: str = DEFAULT_FAMILY) -> dict[str, Any]:
    """``{name: type}`` of the model fields a run sets: ``family``'s config less the fields
    whose role the run decides (:data:`SET_BY_RUN`)."""
    config_class = get_family(family).config_class
    return {
        name: kind
        for name, kind in config_class.field_types().items()
        if config_class.role(name) not in SET_BY_RUN
    }


def field_types(family: str = DEFAULT_FAMILY) -> dict[str, Any]:
    """``{name: type}`` of every field a preset, file or flag sets for a ``family`` run: the
    run's own fields of :class:`TrainConfig`, then the model's (:func:`model_field_types`)."""
    return {**run_field_types(), **model_field_types(family)}


def settable_fields() -> dict[str, tuple[Any, tuple[str, ...]]]:
    """``{name: (type, families)}`` of every field any run may set: the run's own fields
    (every family's) and each family's model fields, with the families that have them (the
    command line's flags; a field of one family given for a run of another is a
    ``ConfigError`` from :func:`check_values`)."""
    fields = {name: (kind, tuple(FAMILIES)) for name, kind in run_field_types().items()}
    for family in FAMILIES:
        for name, kind in model_field_types(family).items():
            _, holders = fields.get(name, (kind, ()))
            fields[name] = (kind, (*holders, family))
    return fields


def _is_optional(kind: Any) -> tuple[bool, Any]:
    args = typing.get_args(kind)
    if typing.get_origin(kind) is Union and type(None) in args:
        return True, next(a for a in args if a is not type(None))
    return False, kind


def coerce(name: str, kind: Any, value: Any) -> Any:
    """``value`` (from JSON/TOML, or a command-line string) as field ``name``'s type ``kind``."""
    optional, kind = _is_optional(kind)
    if optional and (value is None or (isinstance(value, str) and value.lower() == "none")):
        return None
    if typing.get_origin(kind) is tuple:
        (item,) = typing.get_args(kind)[:1]
        items = value if isinstance(value, (list, tuple)) else str(value).replace(",", " ").split()
        return tuple(coerce(name, item, v) for v in items)
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool) or (kind is int and isinstance(value, float)):
            raise ConfigError(f"{name} must be {kind.__name__}, got {value!r}")
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be {kind.__name__}, got {value!r}") from None
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    return value


def family_named_in(values: Mapping[str, Any], where: str) -> str:
    """The ``family`` entry of a config mapping (the default family when it has none),
    checked against the registry."""
    family = values.get("family", DEFAULT_FAMILY)
    if not isinstance(family, str):
        raise ConfigError(f"{where}: family must be a name, got {family!r}")
    return get_family(family, where).name


def check_values(
    values: Mapping[str, Any], where: str, family: str = DEFAULT_FAMILY
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Type-check a partial config mapping (flat, or with a nested ``model`` table) of a
    ``family`` run; returns ``(run fields, model fields)``. ``ConfigError`` naming unknown keys
    and ``where``."""
    values = dict(values)
    nested = values.pop("model", None) or {}
    if not isinstance(nested, Mapping):
        raise ConfigError(f"{where}: 'model' must be a table of model options, got {nested!r}")
    run_types = run_field_types()
    model_types = get_family(family).config_class.field_types()
    known = field_types(family)
    unknown = sorted(set(values) - set(known)) + sorted(
        f"model.{key}" for key in set(nested) - set(model_types)
    )
    if unknown:
        raise ConfigError(
            f"{where}: unknown config field(s) {unknown} for a {family} run; known: {sorted(known)}"
        )
    run = {
        key: coerce(key, run_types[key], value) for key, value in values.items() if key in run_types
    }
    model = {
        key: coerce(key, model_types[key], value)
        for key, value in {
            **nested,
            **{k: v for k, v in values.items() if k not in run_types},
        }.items()
    }
    return run, model


def read_config_file(path: Union[str, Path]) -> dict[str, Any]:
    """Entries of a ``.json`` or ``.toml`` config file (a flat table of field values).

    A ``preset`` entry names the preset the file builds on.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            if sys.version_info < (3, 11):
                raise ConfigError(f"{path}: TOML config files need Python >= 3.11; use JSON")
            import tomllib

            values = tomllib.loads(text)
        else:
            values = json.loads(text)
    except (json.JSONDecodeError, ValueError) as error:
        raise ConfigError(
            f"config file {path} is not valid {path.suffix[1:] or 'JSON'}: {error}"
        ) from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a table of field = value entries")
    return values


def preset_settings(
    preset: str, family: Optional[str] = None, recipe: str = "best", time_budget: bool = False
) -> dict[str, Any]:
    """The settings of ``preset`` for a ``family`` run: all of them when the preset is of that
    family (or ``family`` is ``None``), else its run settings alone (``--preset mnist
    --family realnvp`` trains RealNVP with the mnist preset's data and schedule). The
    ``"best"`` recipe adds what the recipe search chose for the preset
    (:data:`~glowflow.families.BEST_RECIPES`), and with ``time_budget`` (a ``max_time`` given
    without ``max_steps``) what it chose for a wall-clock budget
    (:data:`~glowflow.families.TIME_RECIPES`), for the preset's own family only; ``"paper"``
    leaves the paper's settings."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    if recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; choose from {sorted(RECIPES)}")
    settings = dict(PRESETS[preset])
    own = family is None or settings["family"] == family
    if recipe == "best" and own:  # a recipe searched for the preset's own family
        settings.update(BEST_RECIPES.get(preset, {}))
        if time_budget:
            settings.update(TIME_RECIPES.get(preset, {}))
    if not own:
        settings = {k: v for k, v in settings.items() if k in run_field_types()}
        settings["family"] = family
    return settings


def resolve_config(
    preset: Optional[str] = None,
    config_file: Optional[Union[str, Path]] = None,
    overrides: Optional[Mapping[str, Any]] = None,
    recipe: Optional[str] = None,
) -> TrainConfig:
    """Defaults <- preset (``digits`` unless given or named by the file) and its ``recipe``
    (``"best"`` unless given or named by the file) <- file <- overrides.

    The run's family is the one the overrides, else the file, else the preset names; a preset
    of another family lends only its run settings (:func:`preset_settings`). A ``max_time``
    budget given by the file or the overrides without a ``max_steps`` lifts the step limit
    (``max_steps`` 0): the budget is the user's, not the preset's step count."""
    file_values = read_config_file(config_file) if config_file is not None else {}
    preset = preset or file_values.pop("preset", None) or "digits"
    recipe = recipe or file_values.pop("recipe", None) or "best"
    file_values.pop("preset", None)
    file_values.pop("recipe", None)
    overrides = dict(overrides or {})
    family = overrides.get("family", file_values.get("family"))
    settings = preset_settings(preset, family, recipe, is_time_budget(file_values, overrides))
    family = family_named_in(settings, f"preset {preset}")
    run, model = check_values(settings, f"preset {preset}", family)
    for source, where in ((file_values, str(config_file)), (overrides, "overrides")):
        more_run, more_model = check_values(source, where, family)
        run.update(more_run)
        model.update(more_model)
    if is_time_budget(file_values, overrides):
        run["max_steps"] = 0
    return TrainConfig.from_dict({**run, "model": model}, where=f"preset {preset}")


def is_time_budget(*sources: Mapping[str, Any]) -> bool:
    """Whether the user's settings (a file's, the flags') give a ``max_time`` budget and no
    ``max_steps``: the budget is then the time alone."""
    given = {key: value for source in sources for key, value in source.items()}
    return bool(given.get("max_time")) and "max_steps" not in given
