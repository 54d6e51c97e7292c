"""``glowflow export``: a run folder's best checkpoint as a pretrained folder."""

from __future__ import annotations

import argparse

from .common import RAW_WEIGHTS

HELP = (
    "Export a run's best checkpoint (checkpoints/best, else its newest) as a pretrained "
    "folder: config.json, model.safetensors and a generated README.md model card.\n\n"
    "Usage:\n"
    "  glowflow export runs/digits digits-pretrained\n"
    "  glowflow export runs/digits digits-raw --raw-weights --name digits-raw"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN", help="a run folder")
    parser.add_argument("out", metavar="OUT", help="the pretrained folder to write")
    parser.add_argument(
        "--train-command",
        default=None,
        metavar="TEXT",
        help="the command that trained the run, for the card; none: "
        "glowflow train --config RUN/config.json",
    )
    parser.add_argument("--name", default=None, help="the model's name on its card")
    RAW_WEIGHTS.add(parser)


def run(args: argparse.Namespace) -> int:
    from ..training.export import export_run

    out = export_run(
        args.run_dir,
        args.out,
        args.train_command,
        args.name,
        ema=False if args.raw_weights else None,
    )
    print(out)
    return 0
