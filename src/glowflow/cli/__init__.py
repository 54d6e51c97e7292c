"""The ``glowflow`` command line: one module per subcommand in this package.

Each subcommand module ``glowflow.cli.<name>`` defines

* ``HELP``: a one-paragraph summary (its line in ``glowflow --help``), a blank line, and a
  ``Usage:`` block of real invocations, one per line, indented two spaces::

      Usage:
        glowflow eval runs/digits --draws 8

* ``add_arguments(parser)``: its arguments, the shared ones (MODEL, ``--device``, ...) taken
  from :mod:`glowflow.cli.common`;
* ``run(args) -> int``: the command; the exit status.

Errors a user can fix (bad input, missing files, corrupt checkpoints) are raised as
:mod:`glowflow.errors` types (:class:`~glowflow.errors.ConfigError`,
:class:`~glowflow.errors.MissingFileError`, :class:`~glowflow.errors.ModelFileError`) and
printed as one line, with exit status 2.

Before a command in :data:`BATCH_INFERENCE_COMMANDS` runs, :func:`main` tunes the process's
CPU ``malloc`` as the environment says (:mod:`glowflow.allocator`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

from ..allocator import ALLOCATOR_VARIABLE, allocator_from_environment, tune_allocator
from ..errors import GlowflowError
from .common import HelpFormatter, summary

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

BATCH_INFERENCE_COMMANDS = ("eval", "sample", "ood", "manipulate")
"""The commands that run a trained model on large batches (a test split, a grid of samples, the
images of an attribute; ``interpolate`` and ``reconstruct`` take a few): their process keeps
freed memory for reuse (:func:`glowflow.allocator.retain_freed_memory`) unless the environment says
otherwise (:func:`glowflow.allocator.allocator_from_environment`)."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="glowflow",
        description="Glow normalizing flows: train, evaluate, sample, explore.",
        epilog=(
            f"On Linux, {', '.join(BATCH_INFERENCE_COMMANDS)} keep freed CPU memory for reuse "
            "instead of page-faulting it in again for every batch (glowflow.allocator); "
            f"{ALLOCATOR_VARIABLE}=default leaves glibc's malloc as it is."
        ),
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
            help=summary(module.HELP),
            description=module.HELP,
            formatter_class=HelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(_subcommand_run=module.run)  # a private key: options may be named 'run'
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``glowflow`` console script and ``python -m glowflow``."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    args._arguments = arguments  # what a launcher hands its workers
    try:
        if args.command in BATCH_INFERENCE_COMMANDS:
            tune_allocator(allocator_from_environment())
        return int(args._subcommand_run(args) or 0)
    except GlowflowError as error:  # a user's mistake: one line; anything else is a bug
        if os.environ.get("RANK", "0") == "0":  # under torchrun: once, from rank 0
            print(f"glowflow {args.command}: error: {error}", file=sys.stderr)
        return 2
