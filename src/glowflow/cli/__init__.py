"""The ``glowflow`` command line: one module per subcommand in this package.

Each subcommand module ``glowflow.cli.<name>`` defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int`` (the exit status). Errors a user can fix
(bad input, missing files, corrupt checkpoints) are raised as ``ValueError``,
``FileNotFoundError`` or ``RuntimeError`` and printed as one line, with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

COMMANDS = (
    "train",
    "eval",
    "sample",
    "interpolate",
    "manipulate",
    "reconstruct",
    "ood",
    "export",
    "convert",
    "ablate",
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="glowflow", description="Glow normalizing flows: train, evaluate, sample, explore."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"glowflow.cli.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"glowflow.cli.{name}":
                continue  # subcommand not built in this installation
            raise
        sub = subparsers.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(_subcommand_run=module.run)  # a private key: options may be named 'run'
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``glowflow`` console script and ``python -m glowflow``."""
    args = build_parser().parse_args(argv)
    try:
        return int(args._subcommand_run(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"glowflow {args.command}: error: {error}", file=sys.stderr)
        return 2
