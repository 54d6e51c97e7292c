"""Training speed by torch thread count while other processes load the machine (the
README's note on shared machines).

    python benchmarks/threads_under_load.py --burner torch \\
        --output benchmarks/results/threads-under-load-torch.json

For each background load (0, 1, 2 busy processes at the lowest priority, ``nice -n 19``, as a
shared machine's other jobs: one-thread torch matmul loops, ``--burner torch``, or Python busy
loops, ``--burner python``) and each ``--threads`` choice, a fresh ``glowflow train --preset
digits --recipe paper`` of ``--steps`` steps (validation and samples out of the way) is timed,
the choices alternating within each load and repeated ``--rounds`` times; the figure is the
median over rows of ``metrics.csv``'s training images/s, its first row (warm-up) left out.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from glowflow.machine import machine_description
from trials import glowflow_command

BURNERS = {
    "python": "while True: pass",
    "torch": "import torch\ntorch.set_num_threads(1)\na = torch.randn(256, 256)\nwhile True: a @ a",
}
"""What a background process runs: a Python busy loop, or a one-thread torch matmul loop (as
another training on the machine)."""


def images_per_s(run_dir: Path) -> float:
    with open(run_dir / "metrics.csv", newline="") as handle:
        rates = [float(r["images_per_s"]) for r in csv.DictReader(handle) if r["images_per_s"]]
    return statistics.median(rates[1:] or rates)


def timed_run(threads: int, steps: int, folder: Path) -> float:
    command = glowflow_command(
        "train",
        *("--preset", "digits", "--recipe", "paper", "--max-steps", str(steps)),
        *("--threads", str(threads), "--validations", "0", "--eval-every", str(10 * steps)),
        *("--sample-every", str(10 * steps), "--log-every", "25", "--final-eval-draws", "1"),
        *("--run-dir", str(folder), "--no-progress"),
    )
    subprocess.run(command, check=True, capture_output=True)
    return images_per_s(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--loads", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--burner", choices=sorted(BURNERS), default="torch")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for load in args.loads:
            burners = [
                subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", BURNERS[args.burner]])
                for _ in range(load)
            ]
            try:
                rates: dict[int, list[float]] = {t: [] for t in args.threads}
                for round_index in range(args.rounds):
                    order = args.threads if round_index % 2 == 0 else args.threads[::-1]
                    for threads in order:
                        folder = Path(work) / f"load{load}-t{threads}-r{round_index}"
                        rates[threads].append(timed_run(threads, args.steps, folder))
            finally:
                for burner in burners:
                    burner.kill()
            for threads, values in rates.items():
                rows.append(
                    {
                        "background": args.burner,
                        "background_processes": load,
                        "threads": threads,
                        "images_per_s": statistics.median(values),
                        "per_round": values,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    output = {
        "machine": machine_description(),
        "torch": torch.__version__,
        "steps": args.steps,
        "rounds": args.rounds,
        "command": f"glowflow train --preset digits --recipe paper --threads T (background: "
        f"nice -n 19 {args.burner} loops)",
        "rows": rows,
    }
    Path(args.output).write_text(json.dumps(output, indent=2) + "\n")


if __name__ == "__main__":
    main()
