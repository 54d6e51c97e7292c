"""``glowflow interpolate``: a strip of decoded linear interpolations between two latents."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from torch import Tensor

HELP = "Interpolate between two images' latents (all levels) and write the decoded strip as a PNG."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        metavar="MODEL",
        help="a run folder (its best checkpoint, else its newest), a checkpoint, a "
        "pretrained folder, pretrained:NAME or a Hugging Face repo id",
    )
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
        help="classes of the two images, for class-conditional models "
        "(default: the test labels of index inputs)",
    )
    parser.add_argument(
        "--out", default=None, help="PNG file (default: RUN_DIR/experiments/interpolate_A_B.png)"
    )
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="device")


def _label(given: Optional[int], found: Optional[Tensor], name: str) -> Tensor:
    """The class of input ``--name``: given by ``--labels``, else its test label."""
    import torch

    if given is not None:
        return torch.tensor(given)
    if found is None:
        raise ValueError(
            f"this model is class-conditional: give the class of --{name} with --labels"
        )
    return found


def run(args: argparse.Namespace) -> int:
    from ..experiments.files import image_or_index, is_index, save_grid
    from ..experiments.interpolate import interpolate
    from ..pretrained import load_model
    from ..training.distributed import pick_device

    device = pick_device(args.device)
    loaded = load_model(args.path, device)
    shape, n_bins = loaded.info.shape, loaded.info.n_bins
    test_set = loaded.dataset() if is_index(args.a) or is_index(args.b) else None
    (x_a, found_a), (x_b, found_b) = (
        image_or_index(spec, test_set, shape, n_bins) for spec in (args.a, args.b)
    )
    y_a = y_b = None
    if loaded.conditional:
        given = args.labels or (None, None)
        y_a = _label(given[0], found_a, "a").to(device)
        y_b = _label(given[1], found_b, "b").to(device)
    elif args.labels is not None:
        raise ValueError("--labels needs a class-conditional model")
    x_a, x_b = x_a.to(device), x_b.to(device)
    strip = interpolate(loaded.flow, x_a, x_b, args.steps, y_a, y_b)
    name = f"interpolate_{Path(args.a).stem}_{Path(args.b).stem}.png"
    out = Path(args.out) if args.out else loaded.output_dir / "experiments" / name
    save_grid(strip, n_bins, out, nrow=args.steps)
    error = max(float((strip[0] - x_a).abs().max()), float((strip[-1] - x_b).abs().max()))
    print(json.dumps({"out": str(out), "steps": args.steps, "endpoint_max_abs_error": error}))
    return 0
