"""How to measure (:class:`BenchSettings`), each setting with its own command-line option.

Every field carries its option in its metadata (:func:`option`: the help, the flag when it is
not ``--<field name with dashes>``, and anything else ``add_argument`` takes), so the
``glowflow bench`` options, the settings built from them and the command line that reproduces
a run all come from this one class.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from ..allocator import ALLOCATORS, check_allocator
from ..errors import ConfigError


def option(help: str, flag: Optional[str] = None, **settings: Any) -> dict[str, Any]:
    """A field's metadata: its option's ``help``, its ``flag`` (none: ``--<name>`` with dashes)
    and other ``add_argument`` ``settings`` (a ``default`` here overrides the field's)."""
    return {"help": help, "flag": flag, "settings": settings}


@dataclass(frozen=True)
class BenchSettings:
    """How to measure: batch size, CPU threads, timing, and the speed options.

    ``rounds`` repeats the whole set of processes, interleaved, so that the modes share
    whatever else the machine is doing; the summary pools every timed run. Every field is a
    ``glowflow bench`` option (:meth:`add_options`, :meth:`from_options`, :meth:`words`).
    """

    batch: int = field(default=16, metadata=option("images per batch", flag="--batch-size"))
    threads: int = field(
        default=2, metadata=option("CPU threads per task; none: torch's default here", default=None)
    )
    warmup: int = field(default=2, metadata=option("untimed calls before timing"))
    repeats: int = field(default=5, metadata=option("timed runs (median reported)"))
    iterations: int = field(default=3, metadata=option("calls per timed run"))
    rounds: int = field(
        default=1,
        metadata=option(
            "repeat every process this many times, interleaved; the summary pools all timed runs"
        ),
    )
    allocator: str = field(
        default="retain",
        metadata=option(
            "CPU malloc: retain freed memory for reuse "
            "(glowflow.allocator.retain_freed_memory) or leave glibc's default",
            choices=ALLOCATORS,
        ),
    )
    compile: bool = field(
        default=False,
        metadata=option(
            "torch.compile the training objective (forward and backward), sampling's decoding "
            "and encoding (glowflow.compiled)"
        ),
    )
    tf32: bool = field(
        default=False,
        metadata=option(
            "TF32 matmuls/convolutions in CUDA training (never in sampling, "
            "encoding or anything that reports bits/dim)"
        ),
    )
    channels_last: bool = field(
        default=False, metadata=option("channels-last conv weights and batches")
    )

    def __post_init__(self) -> None:
        counts = (self.batch, self.threads, self.repeats, self.iterations, self.rounds)
        if min(counts) < 1 or self.warmup < 0:
            raise ConfigError(
                "batch, threads, repeats, iterations and rounds must be >= 1, warmup >= 0"
            )
        check_allocator(self.allocator, "allocator")

    @staticmethod
    def _flag(setting: dataclasses.Field[Any]) -> str:
        return setting.metadata["flag"] or "--" + setting.name.replace("_", "-")

    @classmethod
    def _dest(cls, setting: dataclasses.Field[Any]) -> str:
        """Where argparse puts the option's value: its flag with underscores."""
        return cls._flag(setting)[2:].replace("-", "_")

    @classmethod
    def add_options(cls, parser: argparse.ArgumentParser) -> None:
        """Add one option per field to ``parser``: a switch for a ``bool``, else a value of the
        default's type, defaulting to the field's default (or the option's own)."""
        for setting in dataclasses.fields(cls):
            settings = {"help": setting.metadata["help"], **setting.metadata["settings"]}
            if isinstance(setting.default, bool):
                settings["action"] = "store_true"
            else:
                settings = {"type": type(setting.default), "default": setting.default, **settings}
            parser.add_argument(cls._flag(setting), **settings)

    @classmethod
    def from_options(cls, args: argparse.Namespace, **defaults: Any) -> BenchSettings:
        """The settings parsed by :meth:`add_options`; ``defaults`` fill the options left at
        ``None`` (``threads``: none given)."""
        values = {s.name: getattr(args, cls._dest(s)) for s in dataclasses.fields(cls)}
        return cls(**{name: defaults[name] if v is None else v for name, v in values.items()})

    def words(self) -> list[str]:
        """The options that give these settings, each with its value (``--batch-size 16``) or
        alone (a switch that is on).

        >>> words = BenchSettings(batch=4, compile=True).words()
        >>> words[0], words[-1]
        ('--batch-size 4', '--compile')
        """
        words = []
        for setting in dataclasses.fields(self):
            value = getattr(self, setting.name)
            if not isinstance(value, bool):
                words.append(f"{self._flag(setting)} {value}")
            elif value:
                words.append(self._flag(setting))
        return words
