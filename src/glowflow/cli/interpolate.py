"""``glowflow interpolate``: a labelled strip of decoded linear interpolations between two
images' latents."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import ConfigError
from .common import DATA_ROOT, DEVICE, MODEL, load, pick_device

if TYPE_CHECKING:
    from torch import Tensor

HELP = (
    "Interpolate between two images' latents (all levels) and write the decoded strip as a "
    "PNG, each image labelled with its weight t.\n\n"
    "Usage:\n"
    "  glowflow interpolate runs/digits --a 16 --b 3 --steps 10\n"
    "  glowflow interpolate pretrained:digits --a 0 --b 7 --out strip.png\n"
    "  glowflow interpolate runs/digits-cond --a 16 --b 3 --labels 0 6"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    MODEL.add(parser)
    parser.add_argument(
        "--a",
        required=True,
        metavar="IMAGE_OR_INDEX",
        help="first image: an image file, or an index into the test split",
    )
    parser.add_argument(
        "--b",
        required=True,
        metavar="IMAGE_OR_INDEX",
        help="second image: an image file, or an index into the test split",
    )
    parser.add_argument(
        "--steps", type=int, default=8, help="images in the strip, endpoints included"
    )
    parser.add_argument(
        "--labels",
        type=int,
        nargs=2,
        default=None,
        metavar=("YA", "YB"),
        help="classes of the two images, for class-conditional models; none: the test "
        "labels of index inputs",
    )
    parser.add_argument(
        "--out", default=None, help="PNG file; none: RUN_DIR/experiments/interpolate_A_B.png"
    )
    DEVICE.add(parser)
    DATA_ROOT.add(parser)


def _label(given: Optional[int], found: Optional[Tensor], name: str) -> Tensor:
    """The class of input ``--name``: given by ``--labels``, else its test label."""
    import torch

    if given is not None:
        return torch.tensor(given)
    if found is None:
        raise ConfigError(
            f"this model is class-conditional: give the class of --{name} with --labels"
        )
    return found


def describe(spec: str) -> str:
    """How an input is named in the picture's title: ``test image 16`` or its file name."""
    from ..experiments.files import is_index

    return f"test image {spec}" if is_index(spec) else Path(spec).name


def run(args: argparse.Namespace) -> int:
    from ..experiments.files import image_or_index, is_index, save_grid
    from ..experiments.interpolate import interpolate, lerp_weights

    device = pick_device(args.device)
    loaded = load(args.model, device)
    shape, n_bins = loaded.data.shape, loaded.data.n_bins
    indices = is_index(args.a) or is_index(args.b)
    test_set = loaded.dataset("test", args.data_root) if indices else None
    (x_a, found_a), (x_b, found_b) = (
        image_or_index(spec, test_set, shape, n_bins) for spec in (args.a, args.b)
    )
    y_a = y_b = None
    if loaded.conditional:
        given = args.labels or (None, None)
        y_a = _label(given[0], found_a, "a").to(device)
        y_b = _label(given[1], found_b, "b").to(device)
    elif args.labels is not None:
        raise ConfigError("--labels needs a class-conditional model")
    x_a, x_b = x_a.to(device), x_b.to(device)
    strip = interpolate(loaded.flow, x_a, x_b, args.steps, y_a, y_b)
    name = f"interpolate_{Path(args.a).stem}_{Path(args.b).stem}.png"
    out = Path(args.out) if args.out else loaded.output_dir / "experiments" / name
    title = (
        f"z = (1 - t) z_A + t z_B, t above each image; A: {describe(args.a)}, B: {describe(args.b)}"
    )
    weights = [f"{t:.2g}" for t in lerp_weights(args.steps).tolist()]
    save_grid(strip, n_bins, out, args.steps, title, columns=weights)
    error = max(float((strip[0] - x_a).abs().max()), float((strip[-1] - x_b).abs().max()))
    print(json.dumps({"out": str(out), "steps": args.steps, "endpoint_max_abs_error": error}))
    return 0
