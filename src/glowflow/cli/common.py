"""What the ``glowflow`` subcommands share, each defined once: the MODEL argument and the
options several commands take, the help formatter, and the one way a command picks its device
and loads its model.

A shared argument is an :class:`Argument` (its flags and ``add_argument`` settings), as
huggingface_hub's CLI declares ``RepoIdArg`` and ``RevisionOpt`` once for all its commands. A
command adds it with ``MODEL.add(parser)`` and changes only what differs for it, e.g.
``SEED.add(parser, default=None, help="seed of the noise; none: the run's seed")``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import ConfigError
from ..precision import PRECISIONS

if TYPE_CHECKING:
    import torch

    from ..store import LoadedModel


@dataclass(frozen=True)
class Argument:
    """One command-line argument: ``parser.add_argument(*flags, **settings)``."""

    flags: tuple[str, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)

    def add(self, parser: argparse.ArgumentParser, **changes: Any) -> argparse.Action:
        """Add the argument to ``parser``, with ``changes`` over its settings."""
        return parser.add_argument(*self.flags, **{**self.settings, **changes})


MODEL_HELP = (
    "a run folder (its best checkpoint, else its newest), a checkpoint, a model folder "
    "(config.json and model.safetensors, as glowflow export writes), pretrained:NAME or a "
    "Hugging Face repo id"
)
"""What a MODEL may be: everything :func:`load` reads."""

MODEL = Argument(("model",), {"metavar": "MODEL", "help": MODEL_HELP})
"""The model a command works on."""

DEVICES = ("auto", "cpu", "cuda")
"""The choices of ``--device``."""

DEVICE = Argument(
    ("--device",),
    {"default": "auto", "choices": DEVICES, "help": "where to compute; auto: CUDA when present"},
)
"""``--device``, turned into a device by :func:`pick_device`."""

PRECISION = Argument(
    ("--precision",),
    {
        "default": "fp32",
        "choices": PRECISIONS,
        "help": "what the coupling and prior networks compute in; the flow's own arithmetic "
        "(log-determinants, prior terms) stays fp32 (see glowflow.precision)",
    },
)
"""``--precision`` of the networks (:func:`glowflow.precision.network_precision`)."""

DATA_ROOT = Argument(
    ("--data-root",),
    {
        "default": None,
        "metavar": "DIR",
        "help": "dataset folder; none: the one the model was trained from",
    },
)
"""``--data-root``: where the model's dataset is read from."""

SEED = Argument(("--seed",), {"type": int, "default": 0, "help": "random seed"})
"""``--seed``; commands say what it seeds."""

BATCH_SIZE = Argument(
    ("--batch-size",), {"type": int, "metavar": "N", "help": "images per forward pass"}
)
"""``--batch-size``; commands give its default."""

RAW_WEIGHTS = Argument(
    ("--raw-weights",),
    {
        "action": "store_true",
        "help": "use the trained weights even where the checkpoint keeps an EMA of them "
        "(which is used otherwise)",
    },
)
"""``--raw-weights``: the trained weights rather than their exponential moving average."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's help with each default shown once and the examples kept as written.

    An option's help gets `` (default: X)`` appended unless its help already says it
    (``%(default)s`` or its own ``(default: ...)``, as the train flags do) or there is nothing
    to show: a default of ``None`` (the help says what ``none`` means), ``False``, ``[]`` or
    a suppressed one. The description's paragraphs are wrapped, except a ``Usage:`` block of
    example invocations, which keeps its lines.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        nothing = default is None or default is False or default is argparse.SUPPRESS
        if "%(default)" in text or "(default:" in text or nothing or default == []:
            return text
        if not action.option_strings and action.nargs not in ("?", "*"):
            return text  # a required positional argument
        return text + " (default: %(default)s)"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        wrap = super()._fill_text
        return "\n\n".join(
            "\n".join(indent + line for line in part.splitlines())
            if part.startswith("Usage:")
            else wrap(part, width, indent)
            for part in text.split("\n\n")
        )


def summary(help_text: str) -> str:
    """The first paragraph of a command's ``HELP``: its line in ``glowflow --help``."""
    return help_text.split("\n\n", 1)[0]


def pick_device(choice: str) -> "torch.device":
    """The device of ``--device``: ``auto`` (CUDA when present), ``cpu`` or ``cuda``;
    :class:`~glowflow.errors.ConfigError` for ``cuda`` without a CUDA device."""
    import torch

    from ..training.distributed import pick_device as device_of

    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: there is no CUDA device here")
    return device_of(choice)


def load(spec: str, device: "torch.device", raw_weights: bool = False) -> "LoadedModel":
    """The model ``spec`` names (anything :data:`MODEL_HELP` lists) on ``device``: every
    command loads its models through here. ``raw_weights``: the trained weights even where a
    checkpoint keeps an EMA of them."""
    from ..store import load_model

    return load_model(spec, device, ema=False if raw_weights else None)
