"""``glowflow ablate``: the paper's Figure 3, six permutation x coupling variants trained alike."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .common import DEVICE

if TYPE_CHECKING:
    from ..experiments.ablation import AblationRun

HELP = (
    "Train the six variants {reverse, shuffle, invconv} x {additive, affine} with equal "
    "budget and seeds; write a table (CSV, Markdown) of each run's test bits/dim (its best "
    "checkpoint, chosen on validation) and a plot of validation bits/dim against steps.\n\n"
    "Usage:\n"
    "  glowflow ablate --preset digits --max-steps 400 --seeds 0 1 2\n"
    "  glowflow ablate --preset digits --max-steps 400 --eval-every 40 "
    "--set hidden_channels=64 --out runs/ablation-digits"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..families import DEFAULT_FAMILY, RECIPES
    from ..training.config import PRESETS

    parser.add_argument(
        "--preset",
        choices=sorted(k for k, v in PRESETS.items() if v.get("family") == DEFAULT_FAMILY),
        default="digits",
        help="Glow configuration every variant starts from",
    )
    parser.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default="paper",
        help="the preset's recipe every variant starts from (paper: the plain Glow, so the "
        "variants differ only where the paper's comparison does)",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="training steps per variant; none: the preset's",
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        default=None,
        help="steps between validation evaluations; none: a tenth of the training steps",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="seeds; every variant runs with each"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a config field for every variant, e.g. hidden_channels=32",
    )
    parser.add_argument(
        "--out",
        default="runs/ablation",
        help="folder for the run folders, ablation.csv, ablation.md, ablation.png",
    )
    DEVICE.add(parser)


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """Config overrides from the flags; :class:`ConfigError` for a malformed ``--set``."""
    values: dict[str, object] = {}
    for item in args.overrides:
        field, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set takes FIELD=VALUE, got {item!r}")
        values[field.strip()] = value.strip()
    for name in ("permutation", "coupling", "seed", "run_dir", "name"):
        if name in values:
            raise ConfigError(f"--set {name}=... is what the ablation varies or names itself")
    values.update(device=args.device, progress=False)
    if args.max_steps is not None:
        values["max_steps"] = args.max_steps
    return values


def _report(run: AblationRun) -> None:
    print(
        f"glowflow ablate: {run.permutation}+{run.coupling} seed {run.seed}: "
        f"test bits/dim {run.test_bpd:.4f} ({run.wall_time_s:.0f} s)",
        file=sys.stderr,
    )


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ..experiments.ablation import plot_curves, run_ablation, summarize, write_table
    from ..training.config import resolve_config

    base = resolve_config(args.preset, None, _overrides(args), args.recipe)
    eval_every = args.eval_every or max(1, base.max_steps // 10)
    base = dataclasses.replace(
        base,
        eval_every=eval_every,
        sample_every=base.max_steps,
        checkpoint_every=min(base.checkpoint_every, base.max_steps),
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = run_ablation(base, args.seeds, out, on_done=_report)
    summaries = summarize(runs)
    write_table(summaries, out / "ablation.csv", out / "ablation.md")
    seeds = " ".join(map(str, args.seeds))
    plot_curves(
        runs, out / "ablation.png", title=f"{args.preset}: {base.max_steps} steps, seeds {seeds}"
    )
    print((out / "ablation.md").read_text(), end="")
    return 0
