"""``glowflow ood``: out-of-distribution detection with a trained model's likelihood."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .common import BATCH_SIZE, DATA_ROOT, DEVICE, MODEL, SEED, load, pick_device

if TYPE_CHECKING:
    from ..ood.specs import ImageSet
    from ..store import DataSpec

HELP = (
    "Out-of-distribution detection: score an in-distribution set and out sets with raw "
    "bits/dim, the typicality test, complexity-corrected and likelihood-ratio scores and "
    "per-level bits/dim; write AUROC/AUPR/FPR95 as JSON and Markdown, and histograms.\n\n"
    "Usage:\n"
    "  glowflow ood runs/digits --in digits:test --out constant hflip noise:uniform\n"
    "  glowflow ood runs/digits --in digits:test --out inverted --background "
    "runs/digits-background\n"
    "  glowflow ood runs/cifar10 --in cifar10:test --out svhn:test --limit 1000 --draws 4"
)

SPEC_HELP = (
    "NAME:SPLIT (digits:test, cifar10:test, svhn:test, ...), folder:PATH, or a "
    "transformation of the --in set: noise:uniform, constant, inverted, hflip, vflip, "
    "shuffled-pixels, blurred"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    MODEL.add(parser)
    parser.add_argument(
        "--in",
        dest="in_spec",
        required=True,
        metavar="SPEC",
        help="the in-distribution set: NAME:SPLIT or folder:PATH",
    )
    parser.add_argument(
        "--out",
        dest="out_specs",
        required=True,
        action="extend",
        nargs="+",
        metavar="SPEC",
        help=f"out-of-distribution sets: {SPEC_HELP}",
    )
    parser.add_argument(
        "--background",
        default=None,
        metavar="MODEL",
        help="background model (any MODEL) for the likelihood ratio; none: no ratio",
    )
    parser.add_argument(
        "--reference",
        default=None,
        metavar="SPEC",
        help="in-distribution images whose mean bits/dim centres the typicality "
        "test; none: the model's held-out validation split when --in is from the model's "
        "dataset and the model holds one out, else the train split of --in's dataset",
    )
    parser.add_argument(
        "--typicality-batch",
        type=int,
        default=5,
        metavar="N",
        help="images per batch of the typicality test (1: per image)",
    )
    BATCH_SIZE.add(parser, default=256)
    parser.add_argument(
        "--draws",
        type=int,
        default=1,
        metavar="N",
        help="uniform dequantization draws averaged per image",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="use at most the first N images of each dataset split or folder",
    )
    SEED.add(
        parser,
        help="seed of the dequantization noise, the transformations and the typicality batches",
    )
    DATA_ROOT.add(parser)
    parser.add_argument(
        "--report",
        default=None,
        metavar="DIR",
        help="report folder; none: ood/ in the model's output folder (RUN_DIR/ood for a run)",
    )
    DEVICE.add(parser)


def reference_spec(in_spec: str, data: "DataSpec") -> str:
    """The typicality reference for ``--in``: the model's held-out validation split when
    ``--in`` is from the model's dataset and the model has one, else the train split."""
    from ..ood.specs import dataset_spec

    name, _ = dataset_spec(in_spec)
    if name.startswith("folder:"):
        raise ConfigError(
            f"--in {in_spec}: give --reference (for example folder:PATH/train), "
            f"the in-distribution images that centre the typicality test"
        )
    return f"{name}:val" if name == data.dataset and data.val_size > 0 else f"{name}:train"


def run(args: argparse.Namespace) -> int:
    from ..ood.detect import detect
    from ..ood.report import markdown, write_report
    from ..ood.specs import TRANSFORMS, dataset_spec, image_set

    for option in ("typicality_batch", "batch_size", "draws", "limit"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise ConfigError(f"--{option.replace('_', '-')} must be >= 1, got {value}")
    if args.in_spec in TRANSFORMS:
        raise ConfigError(
            f"--in {args.in_spec} is a transformation; --in takes NAME:SPLIT or folder:PATH"
        )
    device = pick_device(args.device)
    model = load(args.model, device)
    background = load(args.background, device) if args.background else None
    data = model.data
    shape, n_bins = tuple(data.shape), data.n_bins
    if background is not None and (tuple(background.data.shape), background.data.n_bins) != (
        shape,
        n_bins,
    ):
        raise ConfigError(
            f"the background model {args.background} takes {tuple(background.data.shape)} "
            f"images with {background.data.n_bins} levels; the model {args.model} {shape} "
            f"with {n_bins}"
        )
    root = args.data_root or data.data_root

    def images(spec: str, in_set: "ImageSet | None" = None) -> "ImageSet":
        # The model's own dataset splits as it was trained: its validation images held out.
        own = spec not in TRANSFORMS and dataset_spec(spec)[0] == data.dataset
        val_size = data.val_size if own else 0
        return image_set(spec, in_set, shape, n_bins, root, args.limit, args.seed, val_size)

    in_set = images(args.in_spec)
    reference = images(args.reference or reference_spec(args.in_spec, data))
    out_sets = [images(spec, in_set) for spec in args.out_specs]
    detection = detect(
        model.flow,
        in_set,
        out_sets,
        reference,
        background=background.flow if background else None,
        typicality_batch=args.typicality_batch,
        draws=args.draws,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    folder = Path(args.report) if args.report else model.output_dir / "ood"
    about = {
        "model": str(model.source),
        "step": model.step,
        "background": str(background.source) if background else None,
        "n_bins": n_bins,
        "draws": args.draws,
        "seed": args.seed,
    }
    paths = write_report(detection, folder, about)
    print(markdown(detection))
    for path in paths:
        print(path)
    return 0
