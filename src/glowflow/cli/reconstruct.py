"""``glowflow reconstruct``: check that decode(encode(x)) gives the test images back."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = (
    "Encode and decode test images: print the maximum absolute error as JSON and write "
    "originals beside reconstructions as a PNG."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        metavar="MODEL",
        help="a run folder (its best checkpoint, else its newest), a checkpoint, a "
        "pretrained folder, pretrained:NAME or a Hugging Face repo id",
    )
    parser.add_argument("-n", type=int, default=64, help="number of test images (the first n)")
    parser.add_argument(
        "--out",
        default=None,
        help="PNG of original/reconstruction pairs (default: RUN_DIR/experiments/reconstruct.png)",
    )
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="device")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data import unit_to_levels
    from ..experiments.files import save_grid, take
    from ..experiments.reconstruct import reconstruct
    from ..pretrained import load_model
    from ..training.distributed import pick_device

    if args.n < 1:
        raise ValueError(f"-n must be >= 1, got {args.n}")
    device = pick_device(args.device)
    loaded = load_model(args.path, device)
    test_set = loaded.dataset()
    x, y = take(test_set, range(min(args.n, len(test_set))))
    x = x.to(device)
    result = reconstruct(loaded.flow, x, y.to(device) if loaded.conditional else None)
    n_bins = loaded.info.n_bins
    changed = unit_to_levels(result.images, n_bins) != unit_to_levels(x, n_bins)
    out = Path(args.out) if args.out else loaded.output_dir / "experiments" / "reconstruct.png"
    pairs = torch.stack([x, result.images], dim=1).flatten(0, 1)
    save_grid(pairs, n_bins, out, nrow=16)
    print(
        json.dumps(
            {
                "checkpoint": str(loaded.source),
                "images": len(x),
                "max_abs_error": result.max_abs_error,
                "mean_max_abs_error": float(result.errors.mean()),
                "levels_changed": int(changed.sum()),
                "out": str(out),
            },
            indent=2,
        )
    )
    return 0
