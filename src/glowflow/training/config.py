"""The training configuration: one dataclass, named presets, and overrides from files or flags.

Resolution order (later wins): :class:`TrainConfig` defaults (the ``digits`` preset) <- the
preset's entries <- a JSON or TOML config file <- explicit overrides (command-line flags).
Every value is checked against the field's type; unknown names are errors that list them.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

CHOICES: dict[str, tuple[str, ...]] = {
    "coupling": ("affine", "additive"),
    "permutation": ("invconv", "invconv_lu", "shuffle", "reverse"),
    "scale_fn": ("exp", "sigmoid"),
    "mask": ("channel", "checkerboard", "checkerboard_channel"),
    "memory_mode": ("none", "checkpoint", "invertible"),
    "optimizer": ("adam", "adamax"),
    "lr_schedule": ("constant", "cosine"),
    "device": ("auto", "cpu", "cuda"),
    "test_split": ("test", "val"),
}


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved as JSON with the run and every checkpoint.

    The defaults are the ``digits`` preset: a small Glow that trains on 2 CPU cores in minutes.
    ``batch_size`` is per process (the global batch under torchrun is ``batch_size * world``).
    """

    # run
    name: str = "digits"
    run_dir: str = ""
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    threads: int = 1
    # data
    dataset: str = "digits"
    data_root: str = "data"
    download: bool = False
    image_size: Optional[int] = None
    n_bits: Optional[int] = None
    hflip: bool = False
    val_size: int = 0
    test_split: str = "test"
    num_workers: int = 0
    # model (glowflow.Glow options)
    num_glow_blocks: int = 2
    num_steps_per_block: int = 16
    hidden_channels: int = 64
    coupling: str = "affine"
    permutation: str = "invconv"
    scale_fn: str = "sigmoid"
    mask: str = "channel"
    use_actnorm: bool = True
    learn_top_prior: bool = True
    conditional: bool = False
    class_loss_weight: float = 0.0
    memory_mode: str = "none"
    # optimization
    optimizer: str = "adam"
    lr: float = 1e-3
    warmup_steps: int = 100
    lr_schedule: str = "cosine"
    max_grad_norm: float = 50.0
    batch_size: int = 64
    max_steps: int = 1000
    init_images: int = 512
    ema_decay: float = 0.0
    nan_patience: int = 5
    nan_lr_factor: float = 0.5
    # evaluation, logging, checkpoints
    eval_batch_size: int = 512
    eval_every: int = 200
    eval_draws: int = 1
    final_eval_draws: int = 8
    log_every: int = 25
    sample_every: int = 500
    sample_count: int = 64
    sample_temperatures: tuple[float, ...] = (0.0, 0.5, 0.7, 1.0)
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    tensorboard: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        positive = ("batch_size", "eval_batch_size", "max_steps", "init_images", "log_every",
                    "eval_every", "eval_draws", "final_eval_draws", "sample_every",
                    "sample_count", "checkpoint_every", "keep_checkpoints", "nan_patience")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.class_loss_weight and not self.conditional:
            raise ValueError("class_loss_weight needs conditional=true (the class logits)")
        if not 0.0 < self.nan_lr_factor <= 1.0:
            raise ValueError(f"nan_lr_factor must be in (0, 1], got {self.nan_lr_factor}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "config") -> "TrainConfig":
        """Build from a (possibly partial) mapping, type-checking every entry."""
        return dataclasses.replace(cls(), **check_values(values, where))


FIELD_HELP: dict[str, str] = {
    "name": "run name; the run folder defaults to runs/NAME",
    "run_dir": "run folder (empty: runs/NAME)",
    "seed": "seed of the model initialization, data order and dequantization noise",
    "deterministic": "deterministic algorithms, so a resumed run repeats an uninterrupted one",
    "device": "auto (CUDA when available), cpu or cuda",
    "threads": "CPU threads for torch (0: torch's default, one per core)",
    "dataset": "digits, mnist, fashion-mnist, cifar10, svhn, celeba or folder:PATH",
    "data_root": "folder holding (or receiving) the downloadable datasets",
    "download": "download the dataset if missing",
    "image_size": "resize (CelebA: center crop, then resize) to this size; none keeps it",
    "n_bits": "reduce to this many bits per channel (5 in the paper's CelebA runs); none keeps it",
    "hflip": "random horizontal flips of training images",
    "val_size": "training images held out as the 'val' split (last of the training part)",
    "test_split": "split evaluated during and after training: test, or val (needs val_size)",
    "num_workers": "data loader worker processes",
    "num_glow_blocks": "levels L of the multi-scale architecture",
    "num_steps_per_block": "flow steps K per level",
    "hidden_channels": "width of the coupling networks",
    "coupling": "coupling layer",
    "permutation": "channel mixing between couplings",
    "scale_fn": "affine coupling scale: exp or sigmoid(h + 2)",
    "mask": "coupling mask",
    "use_actnorm": "an ActNorm first in every flow step",
    "learn_top_prior": "a learned Gaussian prior on the top latent",
    "conditional": "class-conditional top prior (needs a labelled dataset)",
    "class_loss_weight": "weight of the cross-entropy on the top latent's class logits",
    "memory_mode": "activation memory in training: none, checkpoint or invertible",
    "optimizer": "adam or adamax",
    "lr": "peak learning rate",
    "warmup_steps": "linear learning-rate warm-up steps",
    "lr_schedule": "after warm-up: constant, or cosine decay to 0 at max_steps",
    "max_grad_norm": "clip the gradient norm to this (<= 0: no clipping)",
    "batch_size": "training images per step and process",
    "max_steps": "optimizer steps to train for",
    "init_images": "training images for the data-dependent ActNorm initialization",
    "ema_decay": "decay of an exponential moving average of the weights (0: none)",
    "nan_patience": "non-finite steps in a row before restoring the last checkpoint",
    "nan_lr_factor": "learning-rate factor applied at each such restore",
    "eval_batch_size": "images per evaluation batch",
    "eval_every": "steps between test evaluations",
    "eval_draws": "dequantization draws per test image in periodic evaluations",
    "final_eval_draws": "dequantization draws per test image in the final evaluation",
    "log_every": "steps between metrics.csv rows",
    "sample_every": "steps between sample grids",
    "sample_count": "images per sample grid",
    "sample_temperatures": "temperatures of the sample grids",
    "checkpoint_every": "steps between checkpoints",
    "keep_checkpoints": "checkpoints kept (the newest)",
    "tensorboard": "also log to TensorBoard (RUN_DIR/tb)",
    "progress": "show a progress bar",
}

_LONG_RUN: dict[str, Any] = dict(
    threads=0, lr_schedule="constant", warmup_steps=5000, init_images=256, log_every=100,
    eval_every=5000, sample_every=5000, checkpoint_every=5000, num_workers=4,
)
"""What the presets for real datasets share: the paper's constant lr after warm-up, GPU-sized
cadences, all CPU threads."""

PRESETS: dict[str, dict[str, Any]] = {
    "digits": {},
    "mnist": dict(
        _LONG_RUN, name="mnist", dataset="mnist", num_glow_blocks=2, num_steps_per_block=16,
        hidden_channels=256, warmup_steps=2000, max_steps=50_000, eval_every=2500,
        sample_every=2500, checkpoint_every=2500,
    ),
    "cifar10": dict(
        _LONG_RUN, name="cifar10", dataset="cifar10", num_glow_blocks=3,
        num_steps_per_block=32, hidden_channels=512, coupling="affine", permutation="invconv",
        learn_top_prior=True, lr=1e-3, batch_size=64, max_steps=200_000,
    ),
    "celeba64": dict(
        _LONG_RUN, name="celeba64", dataset="celeba", image_size=64, n_bits=5, hflip=True,
        num_glow_blocks=4, num_steps_per_block=32, hidden_channels=512, coupling="affine",
        learn_top_prior=True, batch_size=32, max_steps=200_000, eval_batch_size=128,
    ),
    # NICE: additive couplings between channel reversals, no ActNorm; the learned top prior
    # plays the part of NICE's final diagonal scaling.
    "nice": dict(
        name="nice", coupling="additive", permutation="reverse", mask="channel",
        use_actnorm=False, learn_top_prior=True,
    ),
    # RealNVP: affine couplings, checkerboard then channel masks, reversals, no ActNorm.
    "realnvp": dict(
        name="realnvp", coupling="affine", permutation="reverse",
        mask="checkerboard_channel", scale_fn="exp", use_actnorm=False, learn_top_prior=False,
    ),
    "celeba256": dict(
        _LONG_RUN, name="celeba256", dataset="celeba", image_size=256, n_bits=5, hflip=True,
        num_glow_blocks=6, num_steps_per_block=32, hidden_channels=512, coupling="additive",
        learn_top_prior=True, batch_size=4, max_steps=300_000, init_images=64,
        eval_batch_size=16, eval_every=10_000, sample_count=16,
    ),
}


def field_types() -> dict[str, Any]:
    """``{field name: resolved type}`` of :class:`TrainConfig`."""
    return typing.get_type_hints(TrainConfig)


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
        raise ValueError(f"{name} must be true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool) or (kind is int and isinstance(value, float)):
            raise ValueError(f"{name} must be {kind.__name__}, got {value!r}")
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be {kind.__name__}, got {value!r}") from None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value


def check_values(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Type-check a partial config mapping; ``ValueError`` naming unknown keys and ``where``."""
    types = field_types()
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise ValueError(f"{where}: unknown config field(s) {unknown}; known: {sorted(types)}")
    return {key: coerce(key, types[key], value) for key, value in values.items()}


def read_config_file(path: Union[str, Path]) -> dict[str, Any]:
    """Entries of a ``.json`` or ``.toml`` config file (a flat table of field values).

    A ``preset`` entry names the preset the file builds on.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            if sys.version_info < (3, 11):
                raise ValueError(f"{path}: TOML config files need Python >= 3.11; use JSON")
            import tomllib

            values = tomllib.loads(text)
        else:
            values = json.loads(text)
    except (json.JSONDecodeError, ValueError) as error:
        raise ValueError(f"config file {path} is not valid {path.suffix[1:] or 'JSON'}: {error}")
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must hold a table of field = value entries")
    return values


def resolve_config(
    preset: Optional[str] = None,
    config_file: Optional[Union[str, Path]] = None,
    overrides: Optional[Mapping[str, Any]] = None,
) -> TrainConfig:
    """Defaults <- preset (``digits`` unless given or named by the file) <- file <- overrides."""
    file_values = read_config_file(config_file) if config_file is not None else {}
    preset = preset or file_values.pop("preset", None) or "digits"
    file_values.pop("preset", None)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    values: dict[str, Any] = dict(PRESETS[preset])
    values.update(check_values(file_values, str(config_file)))
    values.update(check_values(overrides or {}, "overrides"))
    return TrainConfig.from_dict(values, where=f"preset {preset}")
