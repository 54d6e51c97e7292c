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
    "writes JSON."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..bench import ALLOCATORS, CONFIGS
    from ..memory import MEMORY_MODES
    from ..precision import PRECISIONS

    parser.add_argument(
        "--config",
        nargs="+",
        default=["cifar10-small"],
        metavar="NAME",
        help=f"model configurations: {', '.join(CONFIGS)}; NAME@K<n> for n "
        "steps per level (cifar10-small@K32)",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch")
    parser.add_argument(
        "--modes",
        nargs="+",
        default=list(MEMORY_MODES),
        choices=MEMORY_MODES,
        help="memory modes to train in",
    )
    parser.add_argument(
        "--precision",
        nargs="+",
        default=["fp32"],
        choices=PRECISIONS,
        help="precisions the coupling and prior networks run in (the flow's own "
        "arithmetic stays fp32); each is measured in its own processes",
    )
    parser.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="also time a peer implementation (y0ast, rosinality: a checkout of "
        "y0ast/Glow-PyTorch or rosinality/glow-pytorch) in alternating "
        "processes through benchmarks/peers/NAME.py, and report glowflow's "
        "rate over the peer's per round and their median; repeatable",
    )
    parser.add_argument(
        "--device",
        nargs="+",
        default=None,
        choices=("cpu", "cuda"),
        help="devices; none: the CPU, and CUDA when present",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads per task; none: torch's default here"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls before timing")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median reported)")
    parser.add_argument("--iterations", type=int, default=3, help="calls per timed run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat every process this many times, interleaved; the summary pools all timed runs",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the training objective, forward and backward "
        "(sampling/encoding stay eager)",
    )
    parser.add_argument(
        "--channels-last", action="store_true", help="channels-last conv weights and batches"
    )
    parser.add_argument(
        "--tf32",
        action="store_true",
        help="TF32 matmuls/convolutions in CUDA training (never in sampling, "
        "encoding or anything that reports bits/dim)",
    )
    parser.add_argument(
        "--allocator",
        default="retain",
        choices=ALLOCATORS,
        help="CPU malloc: retain freed memory for reuse "
        "(glowflow.memory.retain_freed_memory) or leave glibc's default",
    )
    parser.add_argument(
        "--output",
        "-o",
        default=None,
        metavar="FILE",
        help="JSON file to write; none: print the JSON",
    )


def format_table(document: dict[str, Any]) -> str:
    """The summary, one line per figure: images/s (median and best run), the fraction of the
    machine's matmul limit and peak memory; then the ratios to each peer."""
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
    for ratio in document["peer_ratios"]:
        parts = [
            f"{task} {ratio[task]['median']:.2f}x (rounds: "
            + ", ".join(f"{value:.2f}" for value in ratio[task]["per_round"])
            + ")"
            for task in ("train", "sample", "encode")
            if task in ratio
        ]
        lines.append(
            f"glowflow {ratio['precision']} {ratio['mode']} / {ratio['peer']} "
            f"({ratio['config']}, {ratio['device']}): " + "; ".join(parts)
        )
    return "\n".join(lines)


def command_line(args: argparse.Namespace, devices: list[str], settings: BenchSettings) -> str:
    """The fully explicit ``glowflow bench`` command that reproduces this run."""
    options = {
        "--config": args.config,
        "--modes": args.modes,
        "--precision": args.precision,
        "--device": devices,
        "--batch-size": [settings.batch],
        "--threads": [settings.threads],
        "--warmup": [settings.warmup],
        "--repeats": [settings.repeats],
        "--iterations": [settings.iterations],
        "--rounds": [settings.rounds],
        "--allocator": [settings.allocator],
    }
    parts = ["glowflow bench"] + [
        f"{flag} {' '.join(map(str, values))}" for flag, values in options.items()
    ]
    parts += [f"--peer {peer}" for peer in args.peer]
    flags = {
        "--compile": settings.compile,
        "--tf32": settings.tf32,
        "--channels-last": settings.channels_last,
    }
    return " ".join(parts + [flag for flag, on in flags.items() if on])


def run(args: argparse.Namespace) -> int:
    import torch

    from ..bench import BenchSettings, get_config, run_benchmark
    from ..peers import parse_peer

    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if "cuda" in devices and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA device here")
    settings = BenchSettings(
        batch=args.batch_size,
        threads=args.threads or torch.get_num_threads(),
        warmup=args.warmup,
        repeats=args.repeats,
        iterations=args.iterations,
        rounds=args.rounds,
        compile=args.compile,
        tf32=args.tf32,
        allocator=args.allocator,
        channels_last=args.channels_last,
    )
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
