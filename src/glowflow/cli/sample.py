"""``glowflow sample``: labelled PNG grids of samples at one or more temperatures."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import ConfigError
from ..precision import AUTO, SAMPLING_PRECISIONS
from .common import DEVICE, MODEL, PRECISION, SEED, load, pick_device

if TYPE_CHECKING:
    from torch import Tensor

    from ..store import LoadedModel

HELP = (
    "Sample a trained model: one labelled PNG grid per temperature, all from the same seeded "
    "latents; a class-conditional model samples one class (--class) or a row per class "
    "(--class-grid).\n\n"
    "Usage:\n"
    "  glowflow sample runs/digits --temperature 0 0.5 0.7 1.0 -n 64\n"
    "  glowflow sample pretrained:digits --seed 1 --out samples.png\n"
    "  glowflow sample runs/digits-cond --class 3\n"
    "  glowflow sample runs/digits-cond --class-grid -n 10 --temperature 0.7\n"
    "  glowflow sample runs/tarflow --inverse jacobi --guidance 1.5"
)

SAMPLES = 64
"""Samples in a grid when ``-n`` is not given."""
PER_CLASS = 10
"""Samples per class in a ``--class-grid`` when ``-n`` is not given."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    MODEL.add(parser)
    parser.add_argument(
        "--temperature",
        "-t",
        type=float,
        nargs="+",
        default=[0.7],
        metavar="T",
        help="temperatures T (the base is N(0, T^2 I))",
    )
    parser.add_argument(
        "-n",
        type=int,
        default=None,
        help=f"samples per grid (per class with --class-grid); none: {SAMPLES} "
        f"({PER_CLASS} per class)",
    )
    SEED.add(parser, help="seed of the latents")
    parser.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="PNG file, _tT added to its name for several temperatures; none: "
        "RUN_DIR/samples/sample_tT.png, sample_classK_tT.png with --class K, "
        "class_grid_tT.png with --class-grid (pretrained models: "
        "./glowflow-outputs/NAME/samples/)",
    )
    classes = parser.add_mutually_exclusive_group()
    classes.add_argument(
        "--class",
        dest="label",
        type=int,
        default=None,
        metavar="K",
        help="the class to sample, for class-conditional models",
    )
    classes.add_argument(
        "--class-grid",
        action="store_true",
        help="a class-conditional model's classes, one labelled row each",
    )
    parser.add_argument(
        "--nrow",
        type=int,
        default=None,
        help="images per row; none: a square (a row per class with --class-grid)",
    )
    transformer = parser.add_argument_group("transformer flows (TarFlow)")
    transformer.add_argument(
        "--guidance",
        type=float,
        default=None,
        metavar="W",
        help="guidance weight: classifier-free for a class-conditional model, attention "
        "temperature for an unconditional one; 0 is plain sampling",
    )
    transformer.add_argument(
        "--guidance-rule",
        choices=("tarflow", "logits"),
        default=None,
        help="TarFlow's rule or STARFlow's logits-guided one; none: tarflow",
    )
    transformer.add_argument(
        "--inverse",
        choices=("cached", "plain", "jacobi"),
        default=None,
        help="the sequential inverse with a key/value cache, without one, or the parallel "
        "Jacobi iteration; none: cached",
    )
    transformer.add_argument(
        "--jacobi-tol", type=float, default=None, metavar="X", help="Jacobi's tolerance; none: 1e-8"
    )
    transformer.add_argument(
        "--jacobi-max-iter",
        type=int,
        default=None,
        metavar="N",
        help="Jacobi's most iterations per chunk; none: 32",
    )
    transformer.add_argument(
        "--denoise",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one score-based denoising step after sampling a model trained with noise "
        "augmentation; none: whenever it was",
    )
    DEVICE.add(parser)
    PRECISION.add(
        parser,
        default=AUTO,
        choices=SAMPLING_PRECISIONS,
        help="what the networks compute in; auto: bf16 where the device has bf16 matrix units "
        "(GPUs, CPUs with AVX-512 BF16 or AMX), else fp32; the flow's own arithmetic stays fp32 "
        "(see glowflow.precision)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        default=None,  # given or not: only a given flag is passed on, see sampling_options
        help="decode through torch.compile (half a minute or more to compile on a CPU: pays "
        "for many samples)",
    )


SAMPLING_OPTIONS = (
    "guidance",
    "guidance_rule",
    "inverse",
    "jacobi_tol",
    "jacobi_max_iter",
    "denoise",
    "compile",
)
"""The flags that are the family's own sampling keywords (TarFlow's; ``compile``: the families
whose ``sample`` decodes through :meth:`Flow.decode`)."""


def sampling_options(args: argparse.Namespace, loaded: LoadedModel) -> dict[str, object]:
    """The given family sampling flags as ``flow.sample`` keywords; a ``ConfigError`` when the
    model's family takes none of them."""
    import inspect

    given = {
        name: getattr(args, name) for name in SAMPLING_OPTIONS if getattr(args, name) is not None
    }
    if args.denoise is None and loaded.record.get("noise_augment"):
        given["denoise"] = True  # a noise-augmented model's samples are denoised
    accepted = inspect.signature(loaded.flow.sample).parameters
    refused = [name for name in given if name not in accepted]
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        raise ConfigError(f"{flags}: a {loaded.family} model takes no such sampling option")
    return {**given, "precision": args.precision}


def file_tag(label: Optional[int], class_grid: bool) -> str:
    """The default file name's stem before the temperature: what was sampled."""
    if class_grid:
        return "class_grid"
    return "sample" if label is None else f"sample_class{label}"


def output_path(
    out: Optional[str], run_dir: Path, temperature: float, several: bool, tag: str = "sample"
) -> Path:
    """Where the grid at ``temperature`` goes: ``out`` (with ``_tT`` for ``several``
    temperatures), else ``RUN_DIR/samples/TAG_tT.png``."""
    if out is None:
        return run_dir / "samples" / f"{tag}_t{temperature:g}.png"
    path = Path(out)
    return (
        path.with_name(f"{path.stem}_t{temperature:g}{path.suffix or '.png'}") if several else path
    )


def labels(args: argparse.Namespace, loaded: LoadedModel, count: int) -> Optional[Tensor]:
    """The classes to sample, ``(count,)`` (class grid: ``(K count,)``), or ``None`` for a
    model that is not class-conditional; :class:`ConfigError` for a missing or bad class."""
    import torch

    from ..experiments.class_grid import class_labels

    if not loaded.conditional:
        if args.label is not None or args.class_grid:
            raise ConfigError(
                "--class and --class-grid need a class-conditional model (trained with "
                f"--conditional); {args.model} is not one"
            )
        return None
    classes = int(loaded.data.num_classes or 0)
    if args.class_grid:
        return class_labels(classes, count)
    if args.label is None:
        raise ConfigError(
            f"{args.model} is class-conditional: pass --class K, K in [0, {classes}), "
            "or --class-grid"
        )
    if not 0 <= args.label < classes:
        raise ConfigError(f"--class {args.label} is not in [0, {classes})")
    return torch.full((count,), args.label, dtype=torch.long)


def run(args: argparse.Namespace) -> int:
    from ..training.images import save_sample_grids

    count = args.n if args.n is not None else PER_CLASS if args.class_grid else SAMPLES
    if count < 1 or any(t < 0 for t in args.temperature):
        raise ConfigError("-n must be >= 1 and temperatures >= 0")
    if args.class_grid and args.nrow is not None:
        raise ConfigError("--nrow does not apply to --class-grid: it has a row per class")
    device = pick_device(args.device)
    loaded = load(args.model, device)
    y = labels(args, loaded, count)
    nrow = count if args.class_grid else args.nrow
    several = len(args.temperature) > 1
    tag = file_tag(args.label, args.class_grid)
    paths = save_sample_grids(
        loaded.flow,
        len(y) if y is not None else count,
        args.temperature,
        loaded.data.n_bins,
        args.seed,
        lambda t: output_path(args.out, loaded.output_dir, t, several, tag),
        None if y is None else y.to(device),
        nrow,
        options=sampling_options(args, loaded),
    )
    for path in paths:
        print(path)
    return 0
