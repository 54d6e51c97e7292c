"""Pretrained model folders, and the one loader for run folders and pretrained folders.

A pretrained folder, in the style of a Hugging Face model repository::

    config.json         {"format": "glowflow.pretrained/1",
                         "glow":   the complete GlowConfig (alone it rebuilds the model),
                         "data":   DataSpec: dataset, shape (C, H, W), n_bins, classes, and how
                                   images become inputs (image_size, n_bits, preprocessing),
                         "source": where the weights came from (run, checkpoint, step, command,
                                   or the converted file) and notes,
                         "metrics": e.g. test bits/dim and how it was measured}
    model.safetensors   the Flow's state_dict; metadata: format and the sha256 of the tensors
    README.md           the model card, generated from config.json (see :mod:`.model_card`)

Loading never unpickles: the weights are safetensors, checked against their sha256, and the
config is JSON. :func:`load_model` takes any of a run folder, a checkpoint folder, a pretrained
folder, ``pretrained:NAME`` (a model shipped in the package) or a Hugging Face repo id (with the
``hub`` extra), and returns a :class:`LoadedModel`; every command that reads a model goes
through it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

import torch
from safetensors.torch import save as safetensors_bytes

from .config import GlowConfig
from .flow import Flow
from .glow import Glow
from .signed_weights import read_signed_weights, tensors_sha256

if TYPE_CHECKING:
    from .data import ImageDataset
    from .training.config import TrainConfig
    from .training.model import DatasetInfo

FORMAT = "glowflow.pretrained/1"
CONFIG_FILE, WEIGHTS_FILE, CARD_FILE = "config.json", "model.safetensors", "README.md"
FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)
BUILTIN_PREFIX = "pretrained:"
BUILTIN_DIR = Path(__file__).parent / "weights"
"""Where the models shipped in the package live (``pretrained:NAME`` is ``BUILTIN_DIR/NAME``)."""

PREPROCESSING = (
    "integer levels k in [0, n_bins) -> x = (k + u) / n_bins - 1/2 with u ~ U(0, 1) "
    "(uniform dequantization; u = 1/2, the bin centres, for encoding and decoding)"
)
"""glowflow's one input convention: every model, converted ones included, reads this ``x``."""

PathLike = Union[str, Path]


@dataclass(frozen=True)
class DataSpec:
    """What a model's data is and how an image becomes its input (``config.json``'s ``data``).

    Attributes:
        dataset: a :func:`glowflow.data.load_dataset` name (``digits``, ``cifar10``,
            ``celeba``, ``folder:PATH``, ...), or a description of data glowflow has no loader
            for (then the commands that need the dataset say so).
        shape: the model's input ``(C, H, W)``.
        n_bins: grey levels per channel (``2 ** n_bits``; 17 for digits).
        num_classes: the dataset's label count (``None``: unlabelled); a class-conditional
            model (``GlowConfig.num_classes``) has as many.
        image_size: centre-crop and resize to this side (``None``: images as stored).
        n_bits: bits kept per channel (``None``: all).
        val_size: training images held out as the ``val`` split.
        data_root: where the downloadable datasets were found.
        preprocessing: the input convention in words (:data:`PREPROCESSING`).
    """

    dataset: str
    shape: tuple[int, int, int]
    n_bins: int
    num_classes: Optional[int] = None
    image_size: Optional[int] = None
    n_bits: Optional[int] = None
    val_size: int = 0
    data_root: str = "data"
    preprocessing: str = PREPROCESSING

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError(f"DataSpec.shape must be (C, H, W), got {self.shape}")
        if self.n_bins < 2:
            raise ValueError(f"DataSpec.n_bins must be >= 2, got {self.n_bins}")

    @property
    def info(self) -> "DatasetInfo":
        """The :class:`~glowflow.training.model.DatasetInfo` view (name, shape, bins, classes)."""
        from .training.model import DatasetInfo

        return DatasetInfo(self.dataset, self.shape, self.n_bins, self.num_classes)

    @classmethod
    def of_run(cls, config: "TrainConfig", info: "DatasetInfo") -> "DataSpec":
        """The data of a training run."""
        return cls(
            info.name,
            info.shape,
            info.n_bins,
            info.num_classes,
            config.image_size,
            config.n_bits,
            config.val_size,
            config.data_root,
        )

    def load(self, split: str = "test", data_root: Optional[str] = None) -> "ImageDataset":
        """The dataset split, preprocessed as the model was trained (no augmentation)."""
        from .data import DATASET_NAMES, load_dataset

        if self.dataset not in DATASET_NAMES and not self.dataset.startswith("folder:"):
            raise ValueError(
                f"this model's data is {self.dataset!r}, which glowflow cannot load; give "
                f"image files where a command takes them"
            )
        return load_dataset(
            self.dataset,
            data_root or self.data_root,
            split,
            image_size=self.image_size,
            n_bits=self.n_bits,
            val_size=self.val_size,
        )

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["shape"] = list(self.shape)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "DataSpec") -> "DataSpec":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{where}: unknown data entries {unknown}; known: {sorted(known)}")
        try:
            return cls(**values)
        except TypeError as error:
            raise ValueError(f"{where}: {error}") from None


@dataclass
class LoadedModel:
    """A flow ready to use, with what it was trained on, as :func:`load_model` returns it.

    Attributes:
        flow: the model, in eval mode, on the requested device.
        glow: its complete :class:`~glowflow.GlowConfig`.
        data: its :class:`DataSpec` (``data.n_bins``, ``data.shape``, ``data.load(split)``).
        source: the folder the weights came from (checkpoint or pretrained folder).
        output_dir: where commands write by default: the run folder, or
            ``./glowflow-outputs/NAME`` for a pretrained model (whose folder may be read-only).
        step: training step of the weights, when known.
        ema: whether ``flow`` holds EMA weights.
        train_config: the run's ``TrainConfig`` (runs, and pretrained folders exported from
            one that recorded it), else ``None``.
        record: the pretrained folder's ``config.json`` (``{}`` for a run).
        dequantizer: how images are dequantized for bits/dim: the run's (uniform, or its
            learned ``q(u | x)``); uniform for a pretrained folder.
    """

    flow: Flow
    glow: GlowConfig
    data: DataSpec
    source: Path
    output_dir: Path
    step: Optional[int] = None
    ema: bool = False
    train_config: Optional["TrainConfig"] = None
    record: dict[str, Any] = field(default_factory=dict)
    dequantizer: Optional[torch.nn.Module] = None

    def __post_init__(self) -> None:
        if self.dequantizer is None:
            from .dequantization import make_dequantizer

            self.dequantizer = make_dequantizer("uniform", self.data.shape, self.data.n_bins)

    @property
    def conditional(self) -> bool:
        """Whether the flow is class-conditional (needs labels ``y``)."""
        return self.glow.num_classes is not None

    @property
    def info(self) -> "DatasetInfo":
        """Dataset name, shape, ``n_bins`` and class count."""
        return self.data.info

    def dataset(self, split: str = "test", data_root: Optional[str] = None) -> "ImageDataset":
        """The model's dataset split (see :meth:`DataSpec.load`)."""
        return self.data.load(split, data_root)


# ------------------------------------------------------------------------------------ saving
def _tensors(flow: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in flow.state_dict().items()}


def save_pretrained(
    flow: Flow,
    path: PathLike,
    data: DataSpec,
    source: Optional[Mapping[str, Any]] = None,
    metrics: Optional[Mapping[str, Any]] = None,
    name: Optional[str] = None,
) -> Path:
    """Write ``flow`` as a pretrained folder at ``path`` (created or replaced); returns it.

    Args:
        flow: a ``Flow`` over a :class:`~glowflow.Glow` (its config is saved with it).
        data: what the model reads (:class:`DataSpec`).
        source: where the weights came from, for the card (``command``, ``checkpoint``,
            ``step``, ``converted_from``, ``notes`` (a list of strings), ...).
        metrics: measured results for the card, e.g. ``{"test_bpd": 2.31,
            "test_bpd_stderr": 0.02, "measured": "297 test images x 8 draws"}``.
        name: the model's name on its card (default: the folder's name).

    The folder is written under a temporary name and renamed into place, so a failed write
    leaves the previous folder (if any) as it was. Non-finite weights are refused.
    """
    from .model_card import model_card

    glow = flow.bijector
    if not isinstance(glow, Glow):
        raise ValueError(
            f"save_pretrained needs a Flow over a Glow, got a Flow over {type(glow).__name__}"
        )
    if tuple(data.shape) != tuple(glow.config.output_shape):
        raise ValueError(
            f"save_pretrained: data.shape {data.shape} is not the model's "
            f"output_shape {glow.config.output_shape}"
        )
    if glow.config.num_classes is not None and data.num_classes != glow.config.num_classes:
        raise ValueError(
            f"save_pretrained: the model is conditional on "
            f"{glow.config.num_classes} classes, data.num_classes is "
            f"{data.num_classes}"
        )
    tensors = _tensors(flow)
    bad = next(
        (k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()),
        None,
    )
    if bad is not None:
        raise ValueError(f"save_pretrained: weight {bad} is not finite (NaN or inf)")
    path = Path(path)
    record = {
        "format": FORMAT,
        "name": name or path.resolve().name,
        "glow": glow.config.replace(memory_mode="none").to_dict(),
        "data": data.to_dict(),
        "source": dict(source or {}),
        "metrics": dict(metrics or {}),
        "parameters": sum(p.numel() for p in flow.parameters()),
    }
    temporary = path.parent / f".tmp-{path.name}-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        temporary.mkdir(parents=True)
        metadata = {"format": FORMAT, "sha256": tensors_sha256(tensors)}
        (temporary / WEIGHTS_FILE).write_bytes(safetensors_bytes(tensors, metadata))
        (temporary / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n")
        (temporary / CARD_FILE).write_text(model_card(record))
        if path.exists():
            shutil.rmtree(path)
        os.replace(temporary, path)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return path


# ----------------------------------------------------------------------------------- loading
def is_pretrained_folder(path: PathLike) -> bool:
    """Whether ``path`` is a folder holding a glowflow pretrained ``config.json``."""
    config = Path(path) / CONFIG_FILE
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def read_record(folder: Path) -> dict[str, Any]:
    """``config.json`` of a pretrained folder, checked; errors name the file."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {folder} is not a pretrained folder")
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise RuntimeError(f"{path} is not readable JSON: {error}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else None
        raise RuntimeError(
            f"{path} is not a glowflow pretrained config (format {found!r}, expected {FORMAT!r})"
        )
    for key in ("glow", "data"):
        if not isinstance(record.get(key), dict):
            raise RuntimeError(f"{path} lacks its {key!r} table")
    return record


def read_pretrained_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a pretrained ``model.safetensors``, checked against their sha256."""
    return read_signed_weights(path, FORMAT, "pretrained weights file")[0]


def _output_dir(name: str) -> Path:
    return Path.cwd() / "glowflow-outputs" / name


def load_pretrained_folder(
    folder: PathLike, device: Union[str, torch.device] = "cpu"
) -> LoadedModel:
    """A pretrained folder as a :class:`LoadedModel` (eval mode, on ``device``)."""
    folder = Path(folder)
    record = read_record(folder)
    where = str(folder / CONFIG_FILE)
    glow = GlowConfig.from_dict(record["glow"], where=where)
    data = DataSpec.from_dict(record["data"], where=where)
    flow = Flow(Glow(glow))
    weights = folder / WEIGHTS_FILE
    try:
        flow.load_state_dict(read_pretrained_weights(weights))
    except RuntimeError as error:
        if str(weights) in str(error):
            raise
        raise RuntimeError(f"{weights} does not fit the model of {where}: {error}") from None
    flow.to(device).eval()
    train_config = None
    if isinstance(record.get("source", {}).get("train_config"), dict):
        from .training.config import TrainConfig

        train_config = TrainConfig.from_dict(record["source"]["train_config"], where=where)
    step = record.get("source", {}).get("step")
    return LoadedModel(
        flow,
        glow,
        data,
        folder,
        _output_dir(folder.resolve().name),
        int(step) if step is not None else None,
        False,
        train_config,
        record,
    )


def _from_run(path: PathLike, device: Union[str, torch.device], ema: Optional[bool]) -> LoadedModel:
    from .training.checkpoint import load_run

    run = load_run(path, device, ema=ema)
    return LoadedModel(
        run.flow,
        run.flow.bijector.config,
        DataSpec.of_run(run.config, run.info),
        run.checkpoint,
        run.run_dir,
        run.step,
        run.ema,
        run.config,
        {},
        run.dequantizer,
    )


def resolve(
    path_or_id: PathLike, revision: Optional[str] = None, cache_dir: Optional[PathLike] = None
) -> Path:
    """Where a model reference points: a folder on disk, ``pretrained:NAME`` (shipped in the
    package), or a Hugging Face repo id (``owner/name``, downloaded and cached by the ``hub``
    extra). ``FileNotFoundError`` when it is none of them."""
    text = str(path_or_id)
    if text.startswith(BUILTIN_PREFIX):
        name = text[len(BUILTIN_PREFIX) :]
        folder = BUILTIN_DIR / name
        if not (folder / CONFIG_FILE).is_file():
            shipped = sorted(p.name for p in BUILTIN_DIR.iterdir()) if BUILTIN_DIR.is_dir() else []
            raise FileNotFoundError(
                f"no shipped model {text!r}; shipped: {[BUILTIN_PREFIX + s for s in shipped]}"
            )
        return folder
    path = Path(text)
    if path.exists():
        return path
    if _looks_like_repo_id(text):
        from .hub import download

        return download(text, revision=revision, cache_dir=cache_dir)
    raise FileNotFoundError(
        f"{text} does not exist (a run folder, checkpoint, pretrained "
        f"folder, {BUILTIN_PREFIX}NAME or a Hugging Face repo id owner/name)"
    )


def _looks_like_repo_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "/", "~"))


def load_model(
    path_or_id: PathLike,
    device: Union[str, torch.device] = "cpu",
    ema: Optional[bool] = None,
    revision: Optional[str] = None,
    cache_dir: Optional[PathLike] = None,
) -> LoadedModel:
    """Load a flow from a run folder (its best checkpoint, else its newest), a checkpoint, a
    pretrained folder, ``pretrained:NAME`` or a Hugging Face repo id.

    Args:
        path_or_id: what to load (see :func:`resolve`).
        device: where to put the flow.
        ema: for checkpoints, use the EMA weights (``None``: when the checkpoint has them).
        revision, cache_dir: for repo ids: the git revision and the download cache.

    The ActNorm layers come back initialized, so the flow never re-initializes from data.
    """
    folder = resolve(path_or_id, revision, cache_dir)
    if is_pretrained_folder(folder):
        return load_pretrained_folder(folder, device)
    if (folder / CONFIG_FILE).is_file() and not (folder / "checkpoints").is_dir():
        read_record(folder)  # a config.json of another format: say so
    return _from_run(folder, device, ema)


def from_pretrained(
    path_or_id: PathLike,
    device: Union[str, torch.device] = "cpu",
    revision: Optional[str] = None,
    cache_dir: Optional[PathLike] = None,
) -> Flow:
    """The :class:`~glowflow.Flow` of a pretrained folder, ``pretrained:NAME``, a Hugging Face
    repo id, or a run folder, in eval mode. :func:`load_model` also gives its data.

    >>> flow = from_pretrained("pretrained:digits")
    >>> flow.sample(4, temperature=0.7).shape
    torch.Size([4, 1, 8, 8])
    """
    return load_model(path_or_id, device, revision=revision, cache_dir=cache_dir).flow


def bits_per_dim_note(num_images: int, draws: int) -> str:
    """How a test bits/dim was measured, for ``metrics["measured"]``."""
    return (
        f"mean over {num_images} test images x {draws} uniform dequantization draws, eval "
        f"mode; bpd = (-log p(x) + D log n_bins) / (D log 2)"
    )


# ---------------------------------------------------------------------------------- exporting
def best_checkpoint(run_dir: PathLike) -> Path:
    """The checkpoint :func:`export_run` takes: ``checkpoints/best`` when the run has one, else
    its newest; ``FileNotFoundError`` when it has none."""
    from .training.checkpoint import checkpoint_dir, resolve_checkpoint

    best = checkpoint_dir(run_dir) / "best"
    return best if best.is_dir() else resolve_checkpoint(run_dir)


def export_run(
    run_dir: PathLike,
    out: PathLike,
    train_command: Optional[str] = None,
    name: Optional[str] = None,
    ema: Optional[bool] = None,
) -> Path:
    """Write a run's best checkpoint (else its newest) as a pretrained folder at ``out``.

    The card records the run's config, the checkpoint and step, the command that trains it
    (``train_command``, default ``glowflow train --config RUN_DIR/config.json``) and, when the
    run's ``result.json`` was measured on this very checkpoint, its test bits/dim.
    """
    from .training.checkpoint import load_run

    run_dir = Path(run_dir)
    checkpoint = best_checkpoint(run_dir)
    run = load_run(checkpoint, ema=ema)
    source: dict[str, Any] = {
        "kind": "glowflow run",
        "command": train_command or f"glowflow train --config {run_dir / 'config.json'}",
        "checkpoint": f"{checkpoint.name} (step {run.step})",
        "step": run.step,
        "ema": run.ema,
        "train_config": run.config.to_dict(),
        "notes": []
        if checkpoint.name == "best"
        else [
            f"the run has no checkpoints/best (best-checkpoint selection), so this is its "
            f"newest checkpoint, {checkpoint.name}"
        ],
    }
    if run.config.dequantization != "uniform":
        source["notes"].append(
            f"the run trained a {run.config.dequantization} dequantizer, which this folder does "
            f"not hold: its bits/dim here are measured with uniform dequantization"
        )
    metrics: dict[str, Any] = {}
    result_path = run_dir / "result.json"
    if result_path.is_file():
        result = json.loads(result_path.read_text())
        if Path(str(result.get("checkpoint", ""))).name == checkpoint.name:
            metrics = {
                "test_bpd": result["test_bpd"],
                "test_bpd_stderr": result.get("test_bpd_stderr"),
                "measured": bits_per_dim_note(result["num_images"], result["draws"])
                + f", from the run's result.json (step {result.get('steps')})",
                "wall_time_s": round(float(result.get("wall_time_s", 0.0)), 1),
                "machine": f"{result.get('machine')}, torch {result.get('torch')}",
            }
    return save_pretrained(
        run.flow, out, DataSpec.of_run(run.config, run.info), source, metrics, name
    )
