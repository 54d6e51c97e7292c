"""``glowflow convert``: another implementation's checkpoint as a glowflow pretrained folder.

The options after SOURCE are the converters' own: each source in
:data:`glowflow.convert.REGISTRY` declares the keyword arguments its converter takes
(:class:`glowflow.convert.Option`), and a flag several sources share is offered once.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..convert import Option, Source

HELP = (
    "Convert a y0ast, rosinality, chaiyujin or TFP Glow checkpoint into a pretrained folder "
    "(config.json, model.safetensors, README.md), mapping every tensor exactly.\n\n"
    "Usage:\n"
    "  glowflow convert --from y0ast glow/glow_affine_coupling.pt --out y0ast-cifar10\n"
    "  glowflow convert --from chaiyujin trained.pkg --hparams hparams/celeba.json "
    "--dataset celeba --out chaiyujin-celeba64\n"
    "  glowflow convert --from rosinality checkpoint/model_200001.pt --image-size 64 "
    "--n-bits 5 --out rosinality-celeba64\n"
    "  glowflow convert --from tfp glow_variables.npz --out tfp-glow"
)


def flags() -> dict[str, list[tuple[Source, Option]]]:
    """Every converter option by flag, with the sources that take it."""
    from ..convert import REGISTRY

    found: dict[str, list[tuple[Source, Option]]] = {}
    for source in REGISTRY.values():
        for option in source.options:
            found.setdefault(option.flag, []).append((source, option))
    return found


def _by_text(pairs: list[tuple[str, str]]) -> str:
    """``"a, b: x; c: y"``: the sources ``pairs`` (name, text) grouped by equal text."""
    groups: dict[str, list[str]] = {}
    for name, text in pairs:
        groups.setdefault(text, []).append(name)
    return "; ".join(f"{', '.join(names)}: {text}" for text, names in groups.items())


def flag_help(takers: list[tuple[Source, Option]]) -> str:
    """The help of a flag: what it means for each source that takes it (one text when they
    agree), then the converters' own defaults, since the flag itself defaults to none."""
    texts = {option.help for _, option in takers}
    names = ", ".join(source.name for source, _ in takers)
    meaning = (
        f"{names}: {texts.pop()}"
        if len(texts) == 1
        else _by_text([(s.name, o.help) for s, o in takers])
    )
    defaults = [(s.name, str(o.default)) for s, o in takers if o.default is not None]
    return meaning + (f"; none: the converter's own ({_by_text(defaults)})" if defaults else "")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..convert import REGISTRY

    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        choices=tuple(REGISTRY),
        help="the implementation that wrote SOURCE",
    )
    parser.add_argument(
        "path",
        metavar="SOURCE",
        help="; ".join(f"{source.name}: {source.reads}" for source in REGISTRY.values()),
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="pretrained folder to write")
    parser.add_argument("--name", default=None, help="the model's name on its card")
    group = parser.add_argument_group("converter options (each source takes its own)")
    for flag, takers in flags().items():
        option = takers[0][1]
        group.add_argument(
            flag,
            dest=f"option_{option.name}",
            type=option.type,
            default=None,
            metavar=option.metavar,
            help=flag_help(takers),
        )


def converter_options(args: argparse.Namespace, source: Source) -> dict[str, Any]:
    """The options given on the command line, as ``source``'s converter's keywords;
    :class:`ConfigError` for one it does not take."""
    taken = {option.name for option in source.options}
    given = {
        key.removeprefix("option_"): value
        for key, value in vars(args).items()
        if key.startswith("option_") and value is not None
    }
    for name in given:
        if name not in taken:
            accepted = ", ".join(option.flag for option in source.options)
            raise ConfigError(
                f"--{name.replace('_', '-')} is not an option of --from {source.name} "
                f"(its options: {accepted})"
            )
    return given


def run(args: argparse.Namespace) -> int:
    from ..convert import REGISTRY, convert

    options = converter_options(args, REGISTRY[args.source])
    converted = convert(args.source, Path(args.path), **options)
    command = shlex.join(["glowflow", *sys.argv[1:]]) if sys.argv[1:2] == ["convert"] else None
    out = converted.save(Path(args.out), command, args.name)
    print(out)
    return 0
