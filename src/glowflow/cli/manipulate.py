"""``glowflow manipulate``: move images along an attribute direction z_pos - z_neg."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import ConfigError
from ..experiments.manipulate import DEFAULT_STRENGTHS
from .common import DATA_ROOT, DEVICE, MODEL, load, pick_device

if TYPE_CHECKING:
    from torch import Tensor

    from ..data import ImageDataset
    from ..store import LoadedModel

HELP = (
    "Compute (or load) the latent direction of an attribute, mean latent with it minus "
    "without it, and write a grid moving test images along it: a row per image, a column per "
    "strength, labelled.\n\n"
    "Usage:\n"
    "  glowflow manipulate runs/digits --attribute 3 --negative 8 --strengths -0.5 0 0.5 1 1.5\n"
    "  glowflow manipulate runs/celeba --attribute Smiling --image 0 1 2\n"
    "  glowflow manipulate runs/digits --direction runs/digits/experiments/"
    "direction_3_vs_8.safetensors"
)
ROWS = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    MODEL.add(parser)
    parser.add_argument(
        "--attribute",
        default=None,
        metavar="NAME_OR_CLASS",
        help="an attribute name (CelebA: Smiling, Male, ...) or, for labelled "
        "sets such as digits, the positive class",
    )
    parser.add_argument(
        "--negative",
        default=None,
        metavar="CLASS",
        help="the negative class for labelled sets; none: every other class",
    )
    parser.add_argument(
        "--direction",
        default=None,
        metavar="FILE",
        help="reuse a saved direction instead of computing one",
    )
    parser.add_argument(
        "--save-direction",
        default=None,
        metavar="FILE",
        help="where to save the computed direction, .safetensors or .pt; none: "
        "RUN_DIR/experiments/direction_ATTRIBUTE.safetensors",
    )
    parser.add_argument(
        "--strengths",
        type=float,
        nargs="+",
        default=list(DEFAULT_STRENGTHS),
        help="multiples of the direction added to each image's latent",
    )
    parser.add_argument(
        "--image",
        type=int,
        nargs="+",
        default=None,
        metavar="INDEX",
        help=f"test images to move, one row each; none: the first {ROWS} "
        "test images without the attribute",
    )
    parser.add_argument(
        "--max-images",
        type=int,
        default=2000,
        help="training images per group averaged for the direction",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="PNG file; none: RUN_DIR/experiments/manipulate_ATTRIBUTE.png",
    )
    DEVICE.add(parser)
    DATA_ROOT.add(parser)


def _tag(attribute: str, negative: Optional[str]) -> str:
    """File-name part naming the attribute (and the negative class)."""
    return attribute if negative is None else f"{attribute}_vs_{negative}"


def describe(attribute: Optional[str], negative: Optional[str], saved: Path) -> str:
    """The direction in the picture's title: its attribute (against the negative class), or
    the file it came from."""
    if attribute is None:
        return f"direction {saved.name}"
    return f"attribute {attribute}" + (f" against {negative}" if negative else "")


def compute_direction(
    loaded: LoadedModel,
    attribute: str,
    negative: Optional[str],
    max_images: int,
    data_root: Optional[str] = None,
) -> tuple[list[Tensor], dict[str, str]]:
    """The direction of ``attribute`` from the run's training split, with its metadata."""
    from ..experiments.files import dataset_labels, take
    from ..experiments.manipulate import attribute_direction, select_groups

    if max_images < 1:
        raise ConfigError(f"--max-images must be >= 1, got {max_images}")
    train_set = loaded.dataset("train", data_root)
    masks = select_groups(dataset_labels(train_set), attribute, negative, train_set.attribute_names)
    device = next(loaded.flow.parameters()).device
    groups = []
    for mask in masks:
        x, y = take(train_set, mask.nonzero().flatten()[:max_images].tolist())
        groups.append((x.to(device), y.to(device) if loaded.conditional else None))
    (x_pos, y_pos), (x_neg, y_neg) = groups
    direction = attribute_direction(loaded.flow, x_pos, x_neg, y_pos, y_neg)
    metadata = {
        "attribute": attribute,
        "negative": negative or "",
        "positive_images": str(len(x_pos)),
        "negative_images": str(len(x_neg)),
        "checkpoint": str(loaded.source),
    }
    return direction, metadata


def default_images(
    test_set: ImageDataset, attribute: Optional[str], negative: Optional[str]
) -> list[int]:
    """The first test images without the attribute (any images if it is unknown)."""
    from ..experiments.files import dataset_labels
    from ..experiments.manipulate import select_groups

    if attribute is None:
        return list(range(min(ROWS, len(test_set))))
    _, without = select_groups(
        dataset_labels(test_set), attribute, negative, test_set.attribute_names
    )
    return without.nonzero().flatten()[:ROWS].tolist()


def run(args: argparse.Namespace) -> int:
    from ..experiments.files import save_grid, take
    from ..experiments.manipulate import check_direction, load_direction, manipulate, save_direction

    device = pick_device(args.device)
    loaded = load(args.model, device)
    attribute, negative = args.attribute, args.negative
    experiments = loaded.output_dir / "experiments"
    if args.direction and args.save_direction:
        raise ConfigError("--save-direction saves a computed direction; --direction loads one")
    if args.direction:
        direction, metadata = load_direction(Path(args.direction))
        check_direction(loaded.flow, direction, Path(args.direction))
        attribute = attribute or metadata.get("attribute") or None
        negative = negative or metadata.get("negative") or None
        saved = Path(args.direction)
    elif attribute is None:
        raise ConfigError("give --attribute (or a saved --direction)")
    else:
        direction, metadata = compute_direction(
            loaded, attribute, negative, args.max_images, args.data_root
        )
        saved = Path(
            args.save_direction
            or experiments / f"direction_{_tag(attribute, negative)}.safetensors"
        )
        saved.parent.mkdir(parents=True, exist_ok=True)
        save_direction(direction, saved, metadata)
    test_set = loaded.dataset("test", args.data_root)
    images = args.image or default_images(test_set, attribute, negative)
    x, y = take(test_set, images)
    direction = [d.to(device) for d in direction]
    grid = manipulate(
        loaded.flow,
        x.to(device),
        direction,
        args.strengths,
        y.to(device) if loaded.conditional else None,
    )
    name = _tag(attribute, negative) if attribute else Path(saved).stem
    out = Path(args.out) if args.out else experiments / f"manipulate_{name}.png"
    save_grid(
        grid.flatten(0, 1),
        loaded.data.n_bins,
        out,
        len(args.strengths),
        title=f"z + s (z_pos - z_neg), {describe(attribute, negative, saved)}",
        rows=[f"test {index}" for index in images],
        columns=[f"s = {s:g}" for s in args.strengths],
    )
    counts = {k: int(v) for k, v in metadata.items() if k.endswith("_images")}
    norm = float(sum(d.pow(2).sum() for d in direction) ** 0.5)
    print(
        json.dumps(
            {
                "out": str(out),
                "direction": str(saved),
                "strengths": args.strengths,
                "direction_norm": norm,
                **counts,
            },
            indent=2,
        )
    )
    return 0
