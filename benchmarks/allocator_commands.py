"""Whole ``glowflow`` commands with and without the CPU allocator tuning
(:mod:`glowflow.allocator`): the README's "Memory" figures on it.

    python benchmarks/allocator_commands.py --rounds 3 \\
        --output benchmarks/results/allocator-commands.json

Writes a folder of 3x32x32 PNG images (train/ and test/), trains a ``cifar10-small``-sized
Glow on it (L=3, K=8, width 128, LU 1x1, batch 16; the set-up, not measured), then, in
alternating fresh processes (the order swapped every round), times

* ``glowflow eval MODEL`` (its 500-image test split, batches of 512) and ``glowflow sample MODEL -n 512
  --precision fp32``, as shipped (``retain``) and with ``GLOWFLOW_ALLOCATOR=default``: wall
  seconds and peak resident memory of the whole process (``os.wait4``);
* ``glowflow train`` of ``--steps`` steps of the same model (which does not tune ``malloc``),
  plain and with glibc's own ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` set to
  what :func:`glowflow.allocator.retain_freed_memory` sets: training images/s (the median of
  ``metrics.csv``'s rows after the first) and peak memory.

Each row gives the per-round figures, their medians and the per-round ratio tuned / plain.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image

from glowflow.allocator import ALLOCATOR_VARIABLE
from glowflow.machine import machine_description
from trials import glowflow_command, shown

MODEL = (
    *("--num-glow-blocks", "3", "--num-steps-per-block", "8", "--hidden-channels", "128"),
    *("--permutation", "invconv_lu", "--dequantization", "uniform", "--coupling-dropout", "0"),
    *("--scale-fn", "exp", "--no-learn-top-prior", "--batch-size", "16", "--threads", "2"),
)
"""``glowflow train`` options of the benchmark's ``cifar10-small`` model."""

RETAIN_BY_GLIBC = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}
"""glibc's environment form of :func:`glowflow.allocator.retain_freed_memory`."""


def write_images(folder: Path, train: int, test: int) -> None:
    """Smooth random colour images (a bilinear 4x4 grid plus noise), PNG, in train/ and test/."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("test", test)):
        (folder / split).mkdir(parents=True)
        for index in range(count):
            grid = rng.integers(0, 256, size=(4, 4, 3)).astype(np.uint8)
            image = np.asarray(Image.fromarray(grid).resize((32, 32), Image.BILINEAR))
            noisy = image.astype(int) + rng.integers(-20, 21, size=image.shape)
            Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(
                folder / split / f"{index}.png"
            )


def timed(command: list[str], environ: dict[str, str]) -> tuple[float, float]:
    """``(wall seconds, peak resident MiB)`` of one run of ``command`` in a fresh process."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode:
        raise SystemExit(f"{shown(command)} failed ({process.returncode}): {stderr[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def training_rate(run_dir: Path) -> float:
    with open(run_dir / "metrics.csv", newline="") as handle:
        rates = [float(r["images_per_s"]) for r in csv.DictReader(handle) if r["images_per_s"]]
    return statistics.median(rates[1:] or rates)


def environment(tuned: bool, variable: Optional[str]) -> dict[str, str]:
    """This process's environment, tuned or plain: ``variable`` is how a plain run asks for
    glibc's defaults (``GLOWFLOW_ALLOCATOR=default``), ``None`` where the plain run is the
    command as it is and the tuned one sets glibc's thresholds."""
    environ = {k: v for k, v in os.environ.items() if k not in RETAIN_BY_GLIBC}
    environ.pop(ALLOCATOR_VARIABLE, None)
    if variable is not None and not tuned:
        environ[ALLOCATOR_VARIABLE] = variable
    if variable is None and tuned:
        environ.update(RETAIN_BY_GLIBC)
    return environ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        write_images(work / "images", train=1000, test=500)
        data = ("--dataset", f"folder:{work / 'images'}", "--val-size", "0", "--no-progress")
        model = work / "model"
        budget = ("--max-steps", "40", "--validations", "0", "--final-eval-draws", "1")
        subprocess.run(
            glowflow_command("train", *MODEL, *data, *budget, "--run-dir", str(model)),
            check=True,
            capture_output=True,
        )
        commands = {
            "eval": glowflow_command("eval", str(model), "--draws", "1"),
            "sample": glowflow_command(
                "sample",
                str(model),
                "-n",
                "512",
                "--precision",
                "fp32",
                "--out",
                str(work / "s.png"),
            ),
        }
        figures: dict[str, dict[bool, list[dict[str, float]]]] = {
            name: {True: [], False: []} for name in (*commands, "train")
        }
        for round_index in range(args.rounds):
            order = (True, False) if round_index % 2 == 0 else (False, True)
            for name, command in commands.items():
                for tuned in order:
                    wall, peak = timed(command, environment(tuned, "default"))
                    figures[name][tuned].append({"wall_s": wall, "peak_rss_mb": peak})
            for tuned in order:
                run_dir = work / f"train-{round_index}-{tuned}"
                steps = ("--max-steps", str(args.steps), "--validations", "0")
                quiet = ("--sample-every", str(10 * args.steps), "--log-every", "20")
                final = ("--final-eval-draws", "1", "--run-dir", str(run_dir))
                command = glowflow_command("train", *MODEL, *data, *steps, *quiet, *final)
                _, peak = timed(command, environment(tuned, None))
                rate = training_rate(run_dir)
                figures["train"][tuned].append({"images_per_s": rate, "peak_rss_mb": peak})
            print(f"round {round_index + 1} of {args.rounds} done", flush=True)
    rows: list[dict[str, Any]] = []
    for name, by_tuning in figures.items():
        key = "images_per_s" if name == "train" else "wall_s"
        row: dict[str, Any] = {"command": name, "figure": key}
        for tuned, label in ((True, "retain"), (False, "default")):
            values = [r[key] for r in by_tuning[tuned]]
            peaks = [r["peak_rss_mb"] for r in by_tuning[tuned]]
            row[label] = {
                "per_round": values,
                "median": statistics.median(values),
                "peak_rss_mb": statistics.median(peaks),
            }
        ratios = [t[key] / p[key] for t, p in zip(by_tuning[True], by_tuning[False])]
        row["retain_over_default"] = {"per_round": ratios, "median": statistics.median(ratios)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    output = {
        "machine": machine_description(),
        "torch": torch.__version__,
        "rounds": args.rounds,
        "train_steps": args.steps,
        "model": shown(glowflow_command("train", *MODEL)),
        "commands": {name: shown(command) for name, command in commands.items()},
        "rows": rows,
    }
    Path(args.output).write_text(json.dumps(output, indent=2) + "\n")


if __name__ == "__main__":
    main()
