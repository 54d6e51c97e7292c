"""``glowflow reconstruct``: check that decode(encode(x)) gives the test images back."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .common import DATA_ROOT, DEVICE, MODEL, load, pick_device

if TYPE_CHECKING:
    from torch import Tensor

HELP = (
    "Encode and decode test images: print the maximum absolute error as JSON and write a PNG "
    "of rows of originals, each above its row of reconstructions, labelled.\n\n"
    "Usage:\n"
    "  glowflow reconstruct runs/digits -n 64\n"
    "  glowflow reconstruct pretrained:digits --out reconstruction.png"
)

PER_ROW = 16
"""Test images in a row of the picture."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    MODEL.add(parser)
    parser.add_argument("-n", type=int, default=64, help="number of test images (the first n)")
    parser.add_argument(
        "--out",
        default=None,
        help="PNG of originals above their reconstructions; none: "
        "RUN_DIR/experiments/reconstruct.png",
    )
    DEVICE.add(parser)
    DATA_ROOT.add(parser)


def paired_rows(x: Tensor, decoded: Tensor, per_row: int) -> tuple[Tensor, list[str]]:
    """The images of the picture, ``per_row`` to a row: each row of originals ``x[i:i+k]``
    followed by the same row decoded, short last rows filled with white; and the row labels."""
    import torch

    rows, labels = [], []
    for start in range(0, len(x), per_row):
        for images in (x, decoded):
            part = images[start : start + per_row]
            blank = part.new_full((per_row - len(part), *part.shape[1:]), 0.5)  # white
            rows.append(torch.cat([part, blank]))
        stop = min(start + per_row, len(x)) - 1
        labels += [f"test {start}-{stop}", "decoded"]
    return torch.cat(rows), labels


def run(args: argparse.Namespace) -> int:
    from ..data import unit_to_levels
    from ..experiments.files import save_grid, take
    from ..experiments.reconstruct import reconstruct

    if args.n < 1:
        raise ConfigError(f"-n must be >= 1, got {args.n}")
    device = pick_device(args.device)
    loaded = load(args.model, device)
    test_set = loaded.dataset("test", args.data_root)
    x, y = take(test_set, range(min(args.n, len(test_set))))
    x = x.to(device)
    result = reconstruct(loaded.flow, x, y.to(device) if loaded.conditional else None)
    n_bins = loaded.data.n_bins
    changed = unit_to_levels(result.images, n_bins) != unit_to_levels(x, n_bins)
    out = Path(args.out) if args.out else loaded.output_dir / "experiments" / "reconstruct.png"
    per_row = min(PER_ROW, len(x))
    images, rows = paired_rows(x, result.images, per_row)
    title = f"decode(encode(x)): max abs error {result.max_abs_error:.2g}"
    save_grid(images, n_bins, out, per_row, title, rows)
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
