"""The one loader: any model on disk, of any family, as a :class:`LoadedModel`.

:func:`load_model` takes a run folder (its best checkpoint, else its newest), a checkpoint, a
model folder, ``pretrained:NAME`` (a model shipped in the package) or a Hugging Face repo id
(the ``hub`` extra). Every command that reads a model goes through it. Loading never unpickles:
the weights are safetensors checked against their sha256, the record is JSON, and the model is
built from its family's config before the weights are read into it. Checkpoints written before
model folders existed (their record in the weights file's metadata) still load.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..bijectors.actnorm import ActNorm
from ..config_base import FlowConfig
from ..dequantization import make_dequantizer
from ..errors import MissingFileError, ModelFileError
from ..families import build, get_family
from ..flow import Flow
from .data import DataSpec
from .record import (
    CONFIG_FILE,
    DEQUANTIZER_FILE,
    FORMAT,
    WEIGHTS_FILE,
    is_model_folder,
    read_record,
    record_config,
    record_data,
)
from .signed_weights import header_shapes, read_signed_weights

PathLike = Union[str, Path]
BUILTIN_PREFIX = "pretrained:"
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "weights"
"""Where the models shipped in the package live (``pretrained:NAME`` is ``BUILTIN_DIR/NAME``)."""
CHECKPOINTS, BEST, EMA_FILE = "checkpoints", "best", "ema.safetensors"
LEGACY_CHECKPOINT_FORMAT = "glowflow.checkpoint/1"
LEGACY_WEIGHTS_FORMATS = ("glowflow.pretrained/1", LEGACY_CHECKPOINT_FORMAT)


@dataclass
class LoadedModel:
    """A flow ready to use, with what it was trained on, as :func:`load_model` returns it.

    Attributes:
        flow: the model, in eval mode, on the requested device.
        config: its complete family config (``flow.config``).
        data: its :class:`~glowflow.store.data.DataSpec` (``data.n_bins``, ``data.shape``,
            ``data.load(split)``).
        source: the folder the weights came from (checkpoint or model folder).
        output_dir: where commands write by default: the run folder, or
            ``./glowflow-outputs/NAME`` for a model folder (which may be read-only).
        dequantizer: how images are dequantized for bits/dim: uniform, or the learned
            ``q(u | x)`` with its weights, in eval mode.
        record: the folder's ``config.json`` record.
        step: training step of the weights, when known.
        ema: whether ``flow`` holds EMA weights.
    """

    flow: Flow
    config: FlowConfig
    data: DataSpec
    source: Path
    output_dir: Path
    dequantizer: torch.nn.Module
    record: dict[str, Any] = field(default_factory=dict)
    step: Optional[int] = None
    ema: bool = False

    @property
    def family(self) -> str:
        """The registry name of the model's family."""
        return str(self.record["family"])

    @property
    def conditional(self) -> bool:
        """Whether the flow is class-conditional (needs labels ``y``)."""
        return self.flow.num_classes is not None

    @property
    def run_settings(self) -> Optional[dict[str, Any]]:
        """The training run's settings (a ``TrainConfig`` as JSON), when the weights come
        from a glowflow run."""
        settings = self.record["provenance"].get("train_config")
        return settings if isinstance(settings, dict) else None

    def dataset(self, split: str = "test", data_root: Optional[str] = None) -> Any:
        """The model's dataset split (see :meth:`DataSpec.load`)."""
        return self.data.load(split, data_root)


# --------------------------------------------------------------------------------- weights
def read_weights(
    path: Path, kind: str = "weights"
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a model folder's weights file, checked against its sha256
    (files of the first formats too; an unsigned one from before signing only when all its
    floats are finite); ``ModelFileError`` naming the file otherwise."""
    try:
        return read_signed_weights(path, (FORMAT, *LEGACY_WEIGHTS_FORMATS), kind, unsigned_ok=True)
    except FileNotFoundError as error:
        raise MissingFileError(str(error)) from None
    except RuntimeError as error:
        raise ModelFileError(str(error)) from None


def check_initialized(module: torch.nn.Module, path: Path) -> None:
    """Refuse a model whose ActNorm layers were never initialized: using it would initialize
    them from whatever data it sees first (the test set, in ``eval``)."""
    names = [
        name
        for name, layer in module.named_modules()
        if isinstance(layer, ActNorm) and not layer.is_initialized
    ]
    if names:
        raise ModelFileError(
            f"{path} holds {len(names)} ActNorm layers that were never initialized (first: "
            f"{names[0]}); it was not written by a training run, or is damaged"
        )


def load_weights(module: torch.nn.Module, path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """``module.load_state_dict(tensors)`` (strict, dtypes kept: a float64 file gives a float64
    model), re-raised naming ``path``; then :func:`check_initialized`."""
    dtypes = {t.dtype for t in tensors.values() if t.is_floating_point()}
    if len(dtypes) == 1:
        module.to(dtype=dtypes.pop())
    own = module.state_dict()
    for name, tensor in tensors.items():
        if name in own and own[name].dtype != tensor.dtype:
            raise ModelFileError(
                f"{path}: tensor {name} has dtype {tensor.dtype}, the model's is {own[name].dtype}"
            )
    try:
        module.load_state_dict(tensors)
    except RuntimeError as error:
        raise ModelFileError(f"{path} does not fit this model: {error}") from None
    check_initialized(module, path)


def inside(folder: Path, name: str) -> Path:
    """``folder / name``, refused when it is a link that leads out of ``folder`` (a model
    folder reads only its own files)."""
    path = folder / name
    if path.is_symlink() and folder.resolve() not in path.resolve().parents:
        raise ModelFileError(f"{path} links to {path.resolve()}, outside the model folder")
    return path


def check_weights_fit(config: FlowConfig, path: Path, where: str) -> None:
    """Refuse a record whose model would not fit the weights file, before the model is built
    (a config.json asking for a billion hidden channels allocates nothing): the model is
    built on the ``meta`` device (shapes, no memory) and its tensors are compared with the
    file's header. A family whose construction computes on values cannot be built on
    ``meta``; its weights are checked when they are loaded."""
    try:
        shapes, metadata = header_shapes(path)
    except FileNotFoundError:
        raise MissingFileError(f"weights file {path} is missing") from None
    except RuntimeError as error:
        raise ModelFileError(str(error)) from None
    if metadata.get("format") not in (FORMAT, *LEGACY_WEIGHTS_FORMATS):
        raise ModelFileError(
            f"{path} is not a glowflow weights file (format {metadata.get('format')!r}, "
            f"expected {FORMAT!r})"
        )
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in build(config).state_dict().items()}
    except (NotImplementedError, RuntimeError):
        return
    for name, shape in expected.items():
        if shapes.get(name) != shape:
            found = "no such tensor" if name not in shapes else f"shape {shapes[name]}"
            raise ModelFileError(
                f"{where} does not describe {path}: its model has {name} of shape {shape}, "
                f"the weights file {found}"
            )
    extra = sorted(set(shapes) - set(expected))
    if extra:
        raise ModelFileError(f"{path} holds tensors the model of {where} has not: {extra[:5]}")


# ---------------------------------------------------------------------------------- folders
def _output_dir(folder: Path) -> Path:
    checkpoints = folder.parent
    if checkpoints.name == CHECKPOINTS:
        return checkpoints.parent
    return Path.cwd() / "glowflow-outputs" / folder.resolve().name


def read_model_folder(
    folder: PathLike, device: Union[str, torch.device] = "cpu", ema: Optional[bool] = None
) -> LoadedModel:
    """A model folder (or a checkpoint, which is one) as a :class:`LoadedModel`, in eval mode
    on ``device``; ``ema`` picks a checkpoint's EMA weights (``None``: when it has them)."""
    folder = Path(folder)
    record = read_record(folder)
    where = str(folder / CONFIG_FILE)
    config = record_config(record, where)
    data = record_data(record, where)
    use_ema = (folder / EMA_FILE).is_file() if ema is None else ema
    weights_path = inside(folder, EMA_FILE if use_ema else WEIGHTS_FILE)
    check_weights_fit(config, weights_path, where)
    tensors, metadata = read_weights(weights_path)
    if metadata.get("format") == FORMAT and "sha256" not in metadata:
        raise ModelFileError(f"{weights_path} lacks the sha256 of its tensors")
    return _loaded(record, config, data, folder, weights_path, tensors, device, use_ema, where)


def _loaded(
    record: dict[str, Any],
    config: FlowConfig,
    data: DataSpec,
    folder: Path,
    weights_path: Path,
    tensors: dict[str, torch.Tensor],
    device: Union[str, torch.device],
    use_ema: bool,
    where: str,
) -> LoadedModel:
    """The :class:`LoadedModel` of a checked record and its weights: the family's flow with
    the weights loaded, the dequantizer, in eval mode on ``device``."""
    flow = build(config)
    load_weights(flow, weights_path, tensors)
    if record.get("noise_augment") and hasattr(flow, "noise_std"):
        flow.noise_std = float(record["noise_augment"])  # what denoising removes (TarFlow)
    dequantizer = _dequantizer(record, data, folder, where)
    step = record["provenance"].get("step")
    return LoadedModel(
        flow.to(device).eval(),
        config,
        data,
        folder,
        _output_dir(folder),
        dequantizer.to(device).eval(),
        record,
        int(step) if step is not None else None,
        use_ema,
    )


def _dequantizer(
    record: dict[str, Any], data: DataSpec, folder: Path, where: str
) -> torch.nn.Module:
    settings = dict(record["dequantizer"])
    kind = settings.pop("kind", None)
    try:
        dequantizer = make_dequantizer(
            kind, data.shape, data.n_bins, settings.get("steps", 4), settings.get("hidden", 32)
        )
    except ValueError as error:
        raise ModelFileError(f"{where}: dequantizer {record['dequantizer']!r}: {error}") from None
    if dequantizer.state_dict():
        path = inside(folder, DEQUANTIZER_FILE)
        load_weights(dequantizer, path, read_weights(path, "dequantizer weights")[0])
    return dequantizer


def _read_legacy_checkpoint(
    folder: Path, device: Union[str, torch.device], ema: Optional[bool]
) -> LoadedModel:
    """A checkpoint written before model folders: its record is in the weights' metadata
    (``config``: the run's settings, ``dataset``, ``step``, and ``glow`` when recorded)."""
    use_ema = (folder / EMA_FILE).is_file() if ema is None else ema
    weights_path = folder / (EMA_FILE if use_ema else WEIGHTS_FILE)
    tensors, metadata = read_weights(weights_path, "checkpoint")
    missing = [key for key in ("step", "config", "dataset") if key not in metadata]
    if missing:
        raise ModelFileError(
            f"{weights_path} lacks the checkpoint metadata entry {missing[0]!r} (damaged or "
            f"not written by glowflow train)"
        )
    try:
        settings = json.loads(metadata["config"])
        data = DataSpec.from_dict(json.loads(metadata["dataset"]), str(weights_path))
        step = int(metadata["step"])
        model = json.loads(metadata["glow"]) if "glow" in metadata else None
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{weights_path}: damaged checkpoint metadata ({error!r})") from None
    if model is None:
        model = _legacy_glow_config(settings, data)
    config = get_family("glow").config_class.from_dict(model, str(weights_path))
    record = {
        "family": "glow",
        "config": config.to_dict(),
        "data": data.to_dict(),
        "dequantizer": {
            "kind": settings.get("dequantization", "uniform"),
            "steps": settings.get("dequantizer_steps", 4),
            "hidden": settings.get("dequantizer_hidden", 32),
        },
        "provenance": {"kind": "glowflow run checkpoint", "step": step, "train_config": settings},
        "metrics": {},
    }
    where = str(weights_path)
    return _loaded(record, config, data, folder, weights_path, tensors, device, use_ema, where)


def _legacy_glow_config(settings: dict[str, Any], data: DataSpec) -> dict[str, Any]:
    """The GlowConfig of a checkpoint older than its ``glow`` metadata: the run's model
    fields with the data's shape, the run's seed and class count."""
    model = dict(settings.get("model") or {})
    glow = get_family("glow").config_class
    model.update({k: v for k, v in settings.items() if k in glow.field_names()})
    model.update(
        output_shape=list(data.shape),
        seed=settings.get("seed", 0),
        num_classes=data.num_classes if settings.get("conditional") else None,
    )
    return model


# --------------------------------------------------------------------------------- resolving
_STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoint_dir(run_dir: PathLike) -> Path:
    """Where a run keeps its checkpoints."""
    return Path(run_dir) / CHECKPOINTS


def list_checkpoints(run_dir: PathLike) -> list[Path]:
    """The run's complete ``step-N`` checkpoint folders, oldest step first."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name))]
    return [path for _, path in sorted(found)]


def checkpoint_folder(path: PathLike) -> Path:
    """A checkpoint folder from a run folder (its best checkpoint, chosen by validation
    bits/dim, else its newest), a checkpoint folder, or a file inside one."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path} does not exist")
    if path.is_file():
        path = path.parent
    if (path / WEIGHTS_FILE).exists() or (path / "state.pt").exists():
        return path
    best = path / CHECKPOINTS / BEST
    if (best / WEIGHTS_FILE).exists():
        return best
    found = list_checkpoints(path)
    if not found:
        raise MissingFileError(
            f"{path} is neither a model folder, a checkpoint nor a run folder with checkpoints"
        )
    return found[-1]


def resolve(
    path_or_id: PathLike, revision: Optional[str] = None, cache_dir: Optional[PathLike] = None
) -> Path:
    """Where a model reference points: a folder on disk, ``pretrained:NAME`` (shipped in the
    package), or a Hugging Face repo id (``owner/name``, downloaded and cached by the ``hub``
    extra). A reference that looks like a local path (it starts with ``.``, ``/`` or ``~``, or
    its first part exists here) and names nothing is "no such folder", never a download."""
    text = str(path_or_id)
    if text.startswith(BUILTIN_PREFIX):
        name = text[len(BUILTIN_PREFIX) :]
        folder = BUILTIN_DIR / name
        if not (folder / CONFIG_FILE).is_file():
            shipped = sorted(p.name for p in BUILTIN_DIR.iterdir()) if BUILTIN_DIR.is_dir() else []
            raise MissingFileError(
                f"no shipped model {text!r}; shipped: {[BUILTIN_PREFIX + s for s in shipped]}"
            )
        return folder
    path = Path(text).expanduser()
    if path.exists():
        return path
    if _looks_like_repo_id(text):
        from .hub import download

        return download(text, revision=revision, cache_dir=cache_dir)
    raise MissingFileError(
        f"no such folder: {text} (a model is a run folder, a checkpoint, a model folder, "
        f"{BUILTIN_PREFIX}NAME or a Hugging Face repo id owner/name)"
    )


def _looks_like_repo_id(text: str) -> bool:
    parts = text.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not text.startswith((".", "/", "~"))
        and not Path(parts[0]).exists()  # runs/digitz: a mistyped local path, not a repo
    )


def load_model(
    path_or_id: PathLike,
    device: Union[str, torch.device] = "cpu",
    ema: Optional[bool] = None,
    revision: Optional[str] = None,
    cache_dir: Optional[PathLike] = None,
) -> LoadedModel:
    """Load a flow of any family from a run folder (its best checkpoint, else its newest), a
    checkpoint, a model folder, ``pretrained:NAME`` or a Hugging Face repo id.

    Args:
        path_or_id: what to load (see :func:`resolve`).
        device: where to put the flow.
        ema: for checkpoints, use the EMA weights (``None``: when the checkpoint has them).
        revision: for repo ids: the git revision.
        cache_dir: for repo ids: the download cache.

    The ActNorm layers come back initialized, so the flow never re-initializes from data.
    """
    folder = resolve(path_or_id, revision, cache_dir)
    if is_model_folder(folder):
        return read_model_folder(folder, device, ema)
    if (folder / CONFIG_FILE).is_file() and not (folder / CHECKPOINTS).is_dir():
        read_record(folder)  # a config.json of another format: say so
    checkpoint = checkpoint_folder(folder)
    if is_model_folder(checkpoint):
        return read_model_folder(checkpoint, device, ema)
    return _read_legacy_checkpoint(checkpoint, device, ema)


def from_pretrained(
    path_or_id: PathLike,
    device: Union[str, torch.device] = "cpu",
    revision: Optional[str] = None,
    cache_dir: Optional[PathLike] = None,
) -> Flow:
    """The :class:`~glowflow.Flow` of a model folder, ``pretrained:NAME``, a Hugging Face repo
    id, or a run folder, in eval mode. :func:`load_model` also gives its data.

    >>> flow = from_pretrained("pretrained:digits")
    >>> flow.sample(4, temperature=0.7).shape
    torch.Size([4, 1, 8, 8])
    """
    return load_model(path_or_id, device, revision=revision, cache_dir=cache_dir).flow
