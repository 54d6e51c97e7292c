"""``glowflow train``: train a Glow from a preset, a config file and flags."""

from __future__ import annotations

import argparse
import os
import typing

from ..training.config import PRESETS, TrainConfig, choices_of, coerce, field_types, help_text

HELP = "Train a Glow; writes a run folder with config, metrics, samples and checkpoints."


def _flag_for(
    parser: argparse.ArgumentParser, name: str, kind: typing.Any, default: object
) -> None:
    """Add ``--name-with-dashes`` for one config field; absent flags leave the field alone."""
    flag = "--" + name.replace("_", "-")
    shown = repr(default) if default == "" else default
    text = f"{help_text(name)} (default: {shown})".replace("%", "%%")
    options: dict[str, typing.Any] = {"default": argparse.SUPPRESS, "help": text, "dest": name}
    if kind is bool:
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, **options)
        return
    item_kind = kind
    if typing.get_origin(kind) is tuple:
        options.update(nargs="+", metavar="X")
        item_kind = typing.get_args(kind)[0]  # argparse converts each token on its own
    elif choices_of(name):
        options["choices"] = choices_of(name)
    else:
        options["metavar"] = {int: "N", float: "X", str: "TEXT"}.get(kind, "N|none")
    parser.add_argument(flag, type=lambda text: coerce(name, item_kind, text), **options)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=argparse.SUPPRESS,
        help="named configuration to start from (default: digits, or the config "
        "file's 'preset' entry)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="JSON or TOML file of config fields, applied over the preset (default: none)",
    )
    parser.add_argument(
        "--resume",
        metavar="auto|CHECKPOINT",
        default=argparse.SUPPRESS,
        help="continue the run folder's newest checkpoint ('auto'; a fresh run "
        "if it has none) or a given checkpoint (default: a fresh run, and "
        "an error if the run folder already has checkpoints)",
    )
    defaults = TrainConfig()
    for name, kind in field_types().items():
        _flag_for(parser, name, kind, defaults.value(name))


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The resolved :class:`TrainConfig`: preset <- ``--config`` file <- flags; with
    ``--resume``, the run's own saved config, where the given settings may only change what
    :data:`~glowflow.training.config.RESUME_MAY_CHANGE` lists."""
    from ..training.checkpoint import list_checkpoints, read_run_config, resolve_checkpoint
    from ..training.config import PRESETS, read_config_file, resolve_config, resume_config
    from ..training.trainer import run_dir_of

    preset, config_file = getattr(args, "preset", None), getattr(args, "config", None)
    overrides = {name: getattr(args, name) for name in field_types() if hasattr(args, name)}
    config = resolve_config(preset, config_file, overrides)
    resume = getattr(args, "resume", None)
    if resume is None:
        return config
    if resume == "auto":
        found = list_checkpoints(run_dir_of(config))
        if not found:
            return config  # nothing to resume: a fresh run
        start = found[-1]
    else:
        start = resolve_checkpoint(resume)
    given: dict[str, typing.Any] = dict(PRESETS[preset]) if preset else {}
    if config_file is not None:
        given.update(read_config_file(config_file))
        given.pop("preset", None)
    given.update(overrides)
    return resume_config(read_run_config(start), given, f"resuming {start}")


def run(args: argparse.Namespace) -> int:
    from ..training.trainer import train

    result = train(config_from_args(args), resume=getattr(args, "resume", None))
    if os.environ.get("RANK", "0") == "0":
        print(
            f"test bits/dim {result.test_bpd:.4f} +- {result.test_bpd_stderr:.4f} "
            f"(best checkpoint {result.best_checkpoint.name}; last: {result.last_test_bpd:.4f}) "
            f"after {result.steps} steps in {result.wall_time_s:.0f} s; run folder "
            f"{result.run_dir}"
        )
    return 0
