"""``glowflow train``: train a flow of any family from a preset, a config file and flags."""

from __future__ import annotations

import argparse
import functools
import os
import sys
import typing

from ..errors import ConfigError
from ..families import RECIPES
from ..training.config import (
    PRESETS,
    TrainConfig,
    choices_of,
    coerce,
    help_text,
    settable_fields,
)

HELP = (
    "Train a flow (Glow, NICE, RealNVP, MAF, IAF: --family); writes a run folder with config, "
    "metrics, samples and checkpoints.\n\nUsage:\n"
    "  glowflow train --preset digits --run-dir runs/digits\n"
    "  glowflow train --family realnvp --max-time 300\n"
    "  glowflow train --preset cifar10 --download --batch-size 32\n"
    "  glowflow train --run-dir runs/digits --resume auto --max-steps 2000"
)


@functools.lru_cache(maxsize=None)
def _resolved(family: str, recipe: str, timed: bool = False) -> TrainConfig:
    """``glowflow train --family FAMILY --recipe RECIPE`` with nothing else given (``timed``:
    but a ``--max-time``)."""
    from ..training.config import resolve_config

    budget = {"max_time": 1.0} if timed else {}
    return resolve_config(overrides={"family": family, **budget}, recipe=recipe)


def _default_text(name: str, families: tuple[str, ...]) -> str:
    """What a field is when no preset, file or flag sets it (the digits preset's best recipe,
    for the first family that has the field), and what the paper recipe makes it where that
    differs: ``"0.002; --recipe paper or another family: 0.001"``."""
    shown = lambda value: repr(value) if value == "" else str(value)  # noqa: E731
    best = _resolved(families[0], "best").value(name)
    paper = _resolved(families[0], "paper").value(name)
    timed = _resolved(families[0], "best", True).value(name)
    text = shown(best)
    if timed != best and name not in ("max_time", "max_steps"):
        text += f"; with --max-time alone: {shown(timed)}"
    if paper != best:
        text += f"; --recipe paper or another family: {shown(paper)}"
    return text


def _flag_for(
    parser: argparse.ArgumentParser, name: str, kind: typing.Any, families: tuple[str, ...]
) -> None:
    """Add ``--name-with-dashes`` for one config field; absent flags leave the field alone. A
    model field's help names the families that have it."""
    from ..families import FAMILIES

    flag = "--" + name.replace("_", "-")
    scope = "" if len(families) == len(FAMILIES) else f"[{', '.join(families)}] "
    default = _default_text(name, families)
    text = f"{scope}{help_text(name, families[0])} (default: {default})".replace("%", "%%")
    options: dict[str, typing.Any] = {"default": argparse.SUPPRESS, "help": text, "dest": name}
    if kind is bool:
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, **options)
        return
    item_kind = kind
    choices = list(dict.fromkeys(c for f in families for c in choices_of(name, f) or ()))
    if typing.get_origin(kind) is tuple:
        options.update(nargs="+", metavar="X")
        item_kind = typing.get_args(kind)[0]  # argparse converts each token on its own
    elif choices:
        options["choices"] = choices
    else:
        options["metavar"] = {int: "N", float: "X", str: "TEXT"}.get(kind, "N|none")
    parser.add_argument(flag, type=lambda text: coerce(name, item_kind, text), **options)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=argparse.SUPPRESS,
        help="named configuration to start from (default: digits, or the config "
        "file's 'preset' entry); a preset of another family than --family lends its data and "
        "schedule only",
    )
    parser.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default=argparse.SUPPRESS,
        help="how the preset is taken: "
        + "; ".join(f"{name}: {text}" for name, text in RECIPES.items())
        + " (default: best, or the config file's 'recipe' entry)",
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
    parser.add_argument(
        "--nproc-per-node",
        type=int,
        default=1,
        metavar="N",
        help="train data-parallel in N processes on this machine (DDP: torchrun --standalone "
        "run by glowflow, so a mistake is one line); --batch-size is per process",
    )
    for name, (kind, families) in settable_fields().items():
        _flag_for(parser, name, kind, families)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The resolved :class:`TrainConfig`: preset <- ``--config`` file <- flags; with
    ``--resume``, the run's own saved config, where the given settings may only change what
    :data:`~glowflow.training.config.RESUME_MAY_CHANGE` lists."""
    from ..store.loader import checkpoint_folder, list_checkpoints
    from ..training.checkpoint import read_run_config
    from ..training.config import (
        is_time_budget,
        preset_settings,
        read_config_file,
        resolve_config,
        resume_config,
    )
    from ..training.trainer import run_dir_of

    preset, config_file = getattr(args, "preset", None), getattr(args, "config", None)
    overrides = {name: getattr(args, name) for name in settable_fields() if hasattr(args, name)}
    recipe = getattr(args, "recipe", None)
    config = resolve_config(preset, config_file, overrides, recipe)
    resume = getattr(args, "resume", None)
    if resume is None:
        return config
    if resume == "auto":
        found = list_checkpoints(run_dir_of(config))
        if not found:
            return config  # nothing to resume: a fresh run
        start = found[-1]
    else:
        start = checkpoint_folder(resume)
    saved = read_run_config(start)
    file_values = read_config_file(config_file) if config_file is not None else {}
    file_values.pop("preset", None)
    family = overrides.get("family", file_values.get("family", saved.family))
    timed = is_time_budget(file_values, overrides)
    given: dict[str, typing.Any] = (
        preset_settings(preset, family, recipe or "best", timed) if preset else {}
    )
    given.update(file_values)
    given.update(overrides)
    return resume_config(saved, given, f"resuming {start}")


def run(args: argparse.Namespace) -> int:
    from ..training.checkpoint import start_checkpoint
    from ..training.distributed import PeerLost
    from ..training.launch import LaunchFailed, is_worker, launch_local
    from ..training.trainer import run_dir_of, train

    if args.nproc_per_node < 1:
        raise ConfigError(f"--nproc-per-node must be >= 1, got {args.nproc_per_node}")
    config = config_from_args(args)
    if args.nproc_per_node > 1 and not is_worker():
        if getattr(args, "resume", None) is None:  # checked once, before any process starts
            start_checkpoint(run_dir_of(config), None, lambda _: None)
        try:
            return launch_local(args.nproc_per_node, args._arguments)
        except LaunchFailed as error:
            print(f"glowflow train: error: {error}", file=sys.stderr)
            return 1
    try:
        result = train(config, resume=getattr(args, "resume", None))
    except PeerLost as error:  # the launcher, or torchrun, names the process that died
        print(f"glowflow train: {error}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":
        noisy = (
            f" [a model of data + N(0, {config.noise_augment:g}^2) noise]"
            if config.noise_augment
            else ""
        )
        print(
            f"test bits/dim{noisy} {result.test_bpd:.4f} +- {result.test_bpd_stderr:.4f} "
            f"[{result.bounds_said()}] (best checkpoint {result.best_checkpoint.name}, "
            f"{result.chosen_by()}; last: {result.last_test_bpd:.4f}) after {result.steps} "
            f"steps in {result.wall_time_s:.0f} s; run folder {result.run_dir}"
        )
    return 0
