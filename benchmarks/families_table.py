"""Every flow family on the digits preset's data at equal wall-clock (the README's table).

    python benchmarks/families_table.py --seconds 300 --parallel 2 \\
        --output benchmarks/results/families-digits-300s.json

Each family's training template is trained with ``glowflow train --family F --recipe paper
--max-time S --final-iw-samples 0`` (the paper recipe: Glow trains as the others do, without
the digits preset's searched recipe; the uniform bound), on the digits preset's data,
validation hold-out, schedule and one torch thread, ``--parallel`` runs at a time, each on
its own core. Then, per family: the best checkpoint's test bits/dim
(the run's ``result.json``: 297 test images x 8 uniform dequantization draws; TarFlow and the
others all on glowflow's one definition), the parameter count, the training images/s (the
median of the run's ``metrics.csv`` rows) and the sampling images/s (64 images at T = 1 in
eval mode, best of 3, one thread, measured after all trainings so no run shares its core).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from glowflow.families import FAMILIES
from glowflow.machine import machine_description
from glowflow.store import load_model
from trials import glowflow_command, run_trainings, shown


def train_command(family: str, seconds: float, run_dir: Path) -> list[str]:
    return glowflow_command(
        "train",
        *("--family", family, "--recipe", "paper", "--max-time", str(seconds)),
        *("--max-steps", "1000000", "--final-iw-samples", "0"),
        *("--run-dir", str(run_dir), "--no-progress"),
    )


def sampling_rate(run_dir: Path, count: int = 64) -> float:
    """Images per second of ``flow.sample(count)`` in eval mode, best of 3."""
    flow = load_model(run_dir).flow
    torch.set_num_threads(1)
    flow.sample(2)  # warm-up (KV caches, lazily built inverses)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        flow.sample(count)
        best = min(best, time.perf_counter() - start)
    return count / best


def training_rate(run_dir: Path) -> float:
    with open(run_dir / "metrics.csv", newline="") as handle:
        rates = [float(r["images_per_s"]) for r in csv.DictReader(handle) if r.get("images_per_s")]
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="training budget per family")
    parser.add_argument("--parallel", type=int, default=2, help="trainings at a time")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--work", default="runs/families", help="where the run folders go")
    parser.add_argument("--output", required=True, help="the JSON file to write")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the finished runs in --work (a result.json) and train only the others",
    )
    args = parser.parse_args()
    work = Path(args.work)
    jobs = [(work / f, train_command(f, args.seconds, work / f)) for f in args.families]
    run_trainings(jobs, args.parallel, args.reuse)
    rows = []
    for family in args.families:
        run_dir = work / family
        result = json.loads((run_dir / "result.json").read_text())
        loaded = load_model(run_dir)
        rows.append(
            {
                "family": family,
                "test_bpd": result["test_bpd"],
                "test_bpd_stderr": result["test_bpd_stderr"],
                "best_step": result["best"]["step"],
                "steps": result["steps"],
                "parameters": sum(p.numel() for p in loaded.flow.parameters()),
                "train_images_per_s": training_rate(run_dir),
                "sample_images_per_s": sampling_rate(run_dir),
                "command": shown(train_command(family, args.seconds, run_dir)),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    output = {
        "machine": machine_description(),
        "torch": torch.__version__,
        "seconds": args.seconds,
        "parallel": args.parallel,
        "rows": rows,
    }
    Path(args.output).write_text(json.dumps(output, indent=2) + "\n")


if __name__ == "__main__":
    main()
