"""``glowflow bench``: training, sampling and encoding speed and peak memory, as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..bench import BenchSettings

HELP = (
    "Benchmark training/sampling/encoding speed, its fraction of the machine's matmul limit "
    "and peak memory per memory mode and precision, side by side with peer implementations; "
    "writes JSON.\n\n"
    "Usage:\n"
    "  glowflow bench --config tiny --modes none --repeats 1 --output bench.json\n"
    "  glowflow bench --config cifar10-small cifar10-small@K32 --rounds 5\n"
    "  glowflow bench --config cifar10-small --modes none --precision fp32 bf16 --rounds 3 "
    "--peer y0ast=/tmp/peers/y0ast\n"
    "  glowflow bench --config cifar10 --batch-size 64 --device cuda --compile --tf32"
)


def _run_options() -> tuple[tuple[tuple[str, ...], dict[str, Any]], ...]:
    """What one run covers and where it goes: ``(flags, add_argument settings)`` per option
    (how to measure is :class:`~glowflow.bench.settings.BenchSettings`' own options)."""
    from ..bench import CONFIGS, known_peers
    from ..memory import MEMORY_MODES
    from ..precision import PRECISIONS

    return (
        (
            ("--config",),
            dict(
                nargs="+",
                default=["cifar10-small"],
                metavar="NAME",
                help=f"model configurations: {', '.join(CONFIGS)}; NAME@K<n> for n "
                "steps per level (cifar10-small@K32)",
            ),
        ),
        (
            ("--modes",),
            dict(
                nargs="+",
                default=list(MEMORY_MODES),
                choices=MEMORY_MODES,
                help="memory modes to train in",
            ),
        ),
        (
            ("--precision",),
            dict(
                nargs="+",
                default=["fp32"],
                choices=PRECISIONS,
                help="precisions the coupling and prior networks run in (the flow's own "
                "arithmetic stays fp32); each is measured in its own processes",
            ),
        ),
        (
            ("--peer",),
            dict(
                action="append",
                default=[],
                metavar="NAME=PATH",
                help=f"also time a peer implementation (NAME: {', '.join(known_peers())}; "
                "PATH: a checkout of y0ast/Glow-PyTorch, rosinality/glow-pytorch or "
                "apple/ml-tarflow, for a Glow or a TarFlow config) in "
                "alternating processes through glowflow.bench.runners.NAME, and report "
                "glowflow's rate over the peer's per round and their median; repeatable",
            ),
        ),
        (
            ("--device",),
            dict(
                nargs="+",
                default=None,
                choices=("cpu", "cuda"),
                help="devices; none: the CPU, and CUDA when present",
            ),
        ),
        (
            ("--output", "-o"),
            dict(default=None, metavar="FILE", help="JSON file to write; none: print the JSON"),
        ),
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..bench import BenchSettings

    for flags, settings in _run_options():
        parser.add_argument(*flags, **settings)
    BenchSettings.add_options(parser)


def format_table(document: dict[str, Any]) -> str:
    """The summary, one line per figure: images/s (median and best run), the fraction of the
    machine's matmul limit and peak memory; where the time goes; then the ratios to each
    peer."""
    lines = [
        f"{'implementation':<14} {'config':<20} {'device':<6} {'precision':<9} {'mode':<11} "
        f"{'task':<7} {'images/s':>8} {'(best)':>9} {'limit':>6}  peak memory"
    ]
    for entry in document["summary"]:
        peak = entry.get("peak_rss_mb", entry.get("peak_allocated_mb"))
        memory = f"{peak:.0f} MB"
        if entry.get("training_rss_mb") is not None:
            memory += (
                f" ({entry['training_rss_mb']:+.0f} MB in training, "
                f"{entry['activation_rss_mb']:.0f} MB beyond gradients and Adam state)"
            )
        if entry.get("other_load") is not None:
            memory += f" [others used up to {entry['other_load']:.0%} of the CPUs]"
        for task in ("train", "sample", "encode"):
            rate = entry.get(f"{task}_images_per_s")
            if rate is not None:
                fraction = entry["fraction_of_limit"].get(task, float("nan"))
                lines.append(
                    f"{entry['implementation']:<14} {entry['config']:<20} {entry['device']:<6} "
                    f"{entry['precision']:<9} {entry['mode']:<11} {task:<7} "
                    f"{rate['median']:>8.1f} ({rate['best']:>7.1f}) {fraction:>6.1%}  "
                    + (memory if task == "train" else "")
                )
    lines += breakdown_lines(document["summary"])
    for ratio in document["peer_ratios"]:
        parts = [
            f"{task} {_ratio_text(ratio[task])}"
            for task in ("train", "sample", "encode")
            if task in ratio
        ]
        lines.append(
            f"glowflow {ratio['precision']} {ratio['mode']} / {ratio['peer']} "
            f"({ratio['config']}, {ratio['device']}): " + "; ".join(parts)
        )
    return "\n".join(lines)


def _ratio_text(ratio: dict[str, Any]) -> str:
    """``1.04x (rounds: 0.95, 1.07, 1.04; convolutions alone: 1.40x)``: one task's ratio to a
    peer, and the ratio with everything but glowflow's convolutions free
    (:func:`glowflow.bench.peers.peer_ratios`) where the task was profiled."""
    rounds = ", ".join(f"{value:.2f}" for value in ratio["per_round"])
    bound = ratio.get("convolution_bound")
    alone = f"; convolutions alone: {bound['median']:.2f}x" if bound else ""
    return f"{ratio['median']:.2f}x (rounds: {rounds}{alone})"


def breakdown_lines(summary: list[dict[str, Any]]) -> list[str]:
    """Where each task's time goes: one line per implementation, precision, mode and task,
    each operator class's percentage of a step (:mod:`glowflow.bench.breakdown`)."""
    from ..bench.breakdown import CLASSES, OUTSIDE

    columns = (*CLASSES, OUTSIDE)
    heads = [name.split()[0][:9] for name in columns]
    lines = [
        "",
        "where the time goes (% of a step):",
        f"{'implementation':<14} {'precision':<9} {'mode':<11} {'task':<7} "
        + " ".join(f"{head:>9}" for head in heads),
    ]
    for entry in summary:
        for task in ("train", "sample", "encode"):
            shares = entry.get(f"{task}_breakdown")
            if shares:
                lines.append(
                    f"{entry['implementation']:<14} {entry['precision']:<9} {entry['mode']:<11} "
                    f"{task:<7} " + " ".join(f"{shares[c]:>9.1%}" for c in columns)
                )
    return lines


def command_line(args: argparse.Namespace, devices: list[str], settings: BenchSettings) -> str:
    """The fully explicit ``glowflow bench`` command that reproduces this run."""
    options = {"--config": args.config, "--modes": args.modes, "--precision": args.precision}
    parts = ["glowflow bench"] + [f"{flag} {' '.join(values)}" for flag, values in options.items()]
    parts += [f"--device {' '.join(devices)}", *settings.words()]
    return " ".join(parts + [f"--peer {peer}" for peer in args.peer])


def run(args: argparse.Namespace) -> int:
    import torch

    from ..bench import BenchSettings, get_config, parse_peer, run_benchmark
    from ..errors import ConfigError

    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if "cuda" in devices and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device here")
    settings = BenchSettings.from_options(args, threads=torch.get_num_threads())
    configs = {name: get_config(name) for name in args.config}
    peers = dict(parse_peer(text) for text in args.peer)
    document = run_benchmark(
        configs,
        args.modes,
        devices,
        settings,
        log=lambda line: print(f"bench: {line}", file=sys.stderr, flush=True),
        precisions=args.precision,
        peers=peers,
    )
    document["command"] = command_line(args, devices, settings)
    text = json.dumps(document, indent=2)
    if args.output is None:
        print(text)
    else:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    print(format_table(document), file=sys.stderr)
    return 0
