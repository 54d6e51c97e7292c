"""``glowflow sample``: PNG grids of samples at one or more temperatures."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Sample a trained model: one PNG grid per temperature, from the same seeded latents."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..precision import PRECISIONS

    parser.add_argument(
        "path",
        metavar="MODEL",
        help="a run folder (its best checkpoint, else its newest), a checkpoint, a "
        "pretrained folder, pretrained:NAME or a Hugging Face repo id",
    )
    parser.add_argument(
        "--temperature",
        "-t",
        type=float,
        nargs="+",
        default=[0.7],
        metavar="T",
        help="temperatures T (the base is N(0, T^2 I))",
    )
    parser.add_argument("-n", type=int, default=64, help="samples per grid")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latents")
    parser.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="PNG file, _tT added to its name for several temperatures; "
        "none: RUN_DIR/samples/sample_tT.png (pretrained models: "
        "./glowflow-outputs/NAME/samples/)",
    )
    parser.add_argument(
        "--class",
        dest="label",
        type=int,
        default=None,
        metavar="K",
        help="class label, for class-conditional models",
    )
    parser.add_argument("--nrow", type=int, default=None, help="images per row; none: square")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="device")
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="what the coupling and prior networks compute in; the flow's own "
        "arithmetic stays fp32 (see glowflow.precision)",
    )


def output_path(out: str | None, run_dir: Path, temperature: float, several: bool) -> Path:
    """Where the grid at ``temperature`` goes."""
    if out is None:
        return run_dir / "samples" / f"sample_t{temperature:g}.png"
    path = Path(out)
    return (
        path.with_name(f"{path.stem}_t{temperature:g}{path.suffix or '.png'}") if several else path
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from ..precision import network_precision
    from ..pretrained import load_model
    from ..training.distributed import pick_device
    from ..training.images import save_sample_grids

    if args.n < 1 or any(t < 0 for t in args.temperature):
        raise ValueError("-n must be >= 1 and temperatures >= 0")
    device = pick_device(args.device)
    loaded = load_model(args.path, device)
    y = None
    if loaded.conditional:
        classes = int(loaded.info.num_classes or 0)
        if args.label is None:
            raise ValueError(
                f"this model is class-conditional: pass --class K, K in [0, {classes})"
            )
        if not 0 <= args.label < classes:
            raise ValueError(f"--class {args.label} is not in [0, {classes})")
        y = torch.full((args.n,), args.label, device=device, dtype=torch.long)
    elif args.label is not None:
        raise ValueError("--class needs a class-conditional model (trained with --conditional)")
    several = len(args.temperature) > 1
    with network_precision(args.precision, device):
        paths = save_sample_grids(
            loaded.flow,
            args.n,
            args.temperature,
            loaded.info.n_bins,
            args.seed,
            lambda t: output_path(args.out, loaded.output_dir, t, several),
            y,
            args.nrow,
        )
    for path in paths:
        print(path)
    return 0
