"""``glowflow bench``: training, sampling and encoding speed and peak memory, as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HELP = "Benchmark training/sampling/encoding speed and peak memory per memory mode; writes JSON."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..bench import ALLOCATORS, CONFIGS
    from ..memory import MEMORY_MODES

    parser.add_argument("--config", nargs="+", default=["cifar10-small"], metavar="NAME",
                        help=f"model configurations: {', '.join(CONFIGS)}; NAME@K<n> for n "
                             "steps per level (cifar10-small@K32)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch")
    parser.add_argument("--modes", nargs="+", default=list(MEMORY_MODES), choices=MEMORY_MODES,
                        help="memory modes to train in")
    parser.add_argument("--device", nargs="+", default=None, choices=("cpu", "cuda"),
                        help="devices; none: the CPU, and CUDA when present")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per task; none: torch's default here")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls before timing")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median reported)")
    parser.add_argument("--iterations", type=int, default=3, help="calls per timed run")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the training forward (sampling/encoding stay eager)")
    parser.add_argument("--channels-last", action="store_true",
                        help="channels-last conv weights and batches")
    parser.add_argument("--tf32", action="store_true",
                        help="TF32 matmuls/convolutions in CUDA training (never in sampling, "
                             "encoding or anything that reports bits/dim)")
    parser.add_argument("--allocator", default="retain", choices=ALLOCATORS,
                        help="CPU malloc: retain freed memory for reuse "
                             "(glowflow.memory.retain_freed_memory) or leave glibc's default")
    parser.add_argument("--output", "-o", default=None, metavar="FILE",
                        help="JSON file to write; none: print the JSON")


def format_table(document: dict[str, Any]) -> str:
    """One line per figure: images/s (median and best run) and peak memory."""
    lines = [f"{'config':<20} {'device':<6} {'mode':<11} {'task':<7} {'images/s':>8} {'(best)':>9}"
             "  peak memory"]
    for entry in document["results"]:
        peak = entry.get("peak_rss_mb", entry.get("peak_allocated_mb"))
        memory = f"{peak:.0f} MB"
        if entry.get("other_load") is not None:
            memory = f"[others used {entry['other_load']:.0%} of the CPUs] " + memory
        if entry.get("training_rss_mb") is not None:
            memory += (f" ({entry['training_rss_mb']:+.0f} MB in training, "
                       f"{entry['activation_rss_mb']:.0f} MB beyond gradients and Adam state)")
        for task in ("train", "sample", "encode"):
            rate = entry.get(f"{task}_images_per_s")
            if rate is not None:
                lines.append(
                    f"{entry['config']:<20} {entry['device']:<6} {entry['mode']:<11} {task:<7} "
                    f"{rate['median']:>8.1f} ({rate['best']:>7.1f})  "
                    + (memory if task == "train" else "")
                )
    return "\n".join(lines)


def command_line(args: argparse.Namespace, devices: list[str], threads: int) -> str:
    """The fully explicit ``glowflow bench`` command that reproduces this run."""
    parts = ["glowflow bench", "--config", *args.config]
    parts += ["--batch-size", str(args.batch_size), "--modes", *args.modes, "--device", *devices,
              "--threads", str(threads), "--warmup", str(args.warmup),
              "--repeats", str(args.repeats), "--iterations", str(args.iterations),
              "--allocator", args.allocator]
    for flag in ("compile", "tf32", "channels_last"):
        parts += [f"--{flag.replace('_', '-')}"] * getattr(args, flag)
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..bench import get_config, run_benchmark

    if min(args.batch_size, args.repeats, args.iterations) < 1 or args.warmup < 0:
        raise ValueError("--batch-size, --repeats and --iterations must be >= 1, --warmup >= 0")
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if "cuda" in devices and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA device here")
    threads = args.threads or torch.get_num_threads()
    configs = [get_config(name) for name in args.config]
    document = run_benchmark(
        configs, args.modes, devices, args.batch_size, threads, args.warmup, args.repeats,
        args.iterations, args.compile, args.tf32, args.allocator, args.channels_last,
        log=lambda line: print(f"bench: {line}", file=sys.stderr, flush=True),
    )
    document["command"] = command_line(args, devices, threads)
    text = json.dumps(document, indent=2)
    if args.output is None:
        print(text)
    else:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    print(format_table(document), file=sys.stderr)
    return 0
