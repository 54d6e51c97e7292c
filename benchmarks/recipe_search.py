"""The recipe search behind the digits presets: candidate settings trained on the training
split and ranked on the validation split only (the README's recipe table).

    python benchmarks/recipe_search.py --budget 300 --parallel 2 \\
        --output benchmarks/results/recipe-digits-300s.json
    python benchmarks/recipe_search.py --budget steps --parallel 2 \\
        --output benchmarks/results/recipe-digits-default.json

Each trial is ``glowflow train --preset digits --recipe paper`` plus its flags: the paper's
Glow with uniform dequantization as the base, then coupling dropout, variational
dequantization, an EMA of the weights, the learning rate, width, bf16 networks. ``--budget
SECONDS`` trains each for that wall-clock time (no step limit: the learning rate anneals over
the time); ``--budget steps`` keeps the preset's 1000 steps. ``--parallel`` trainings run at a
time, each on its own core (one torch thread, the default). Every trial's best checkpoint (chosen
by the run's validations) is then scored on the validation split with
``glowflow eval RUN --split val --iw-samples 16``: the importance-weighted bound with K = 16,
which is comparable across dequantizations (a variational bound of a learned q and a uniform
one are not). Trials are ranked by it; the test split is evaluated the same way for the table,
but chooses nothing. Every trial is recorded with its commands.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

import torch

from glowflow.machine import machine_description
from trials import glowflow_command, run_trainings, shown

IW_SAMPLES = 16

TRIALS: dict[str, tuple[str, ...]] = {
    "paper": (),
    "dropout 0.1": ("--coupling-dropout", "0.1"),
    "variational": ("--dequantization", "variational"),
    "dropout 0.1 + variational": ("--coupling-dropout", "0.1", "--dequantization", "variational"),
    "dropout 0.2 + variational": ("--coupling-dropout", "0.2", "--dequantization", "variational"),
    "dropout 0.1 + variational + EMA 0.999": (
        *("--coupling-dropout", "0.1", "--dequantization", "variational"),
        *("--ema-decay", "0.999"),
    ),
    "dropout 0.1 + variational + lr 2e-3": (
        *("--coupling-dropout", "0.1", "--dequantization", "variational", "--lr", "2e-3"),
    ),
    "dropout 0.1 + variational + lr 3e-3": (
        *("--coupling-dropout", "0.1", "--dequantization", "variational", "--lr", "3e-3"),
    ),
    "dropout 0.1 + variational + lr 5e-3": (
        *("--coupling-dropout", "0.1", "--dequantization", "variational", "--lr", "5e-3"),
    ),
    "dropout 0.2 + variational + lr 2e-3": (
        *("--coupling-dropout", "0.2", "--dequantization", "variational", "--lr", "2e-3"),
    ),
    "dropout 0.1 + variational + width 96": (
        *("--coupling-dropout", "0.1", "--dequantization", "variational"),
        *("--hidden-channels", "96"),
    ),
    "dropout 0.1 + variational + bf16": (
        *("--coupling-dropout", "0.1", "--dequantization", "variational"),
        *("--precision", "bf16"),
    ),
}
"""Candidate settings on top of ``--preset digits --recipe paper``."""


def train_command(flags: tuple[str, ...], budget: str, run_dir: Path) -> list[str]:
    time_budget = ("--max-time", budget, "--max-steps", "0") if budget != "steps" else ()
    return glowflow_command(
        "train",
        *("--preset", "digits", "--recipe", "paper", *flags, *time_budget),
        *("--run-dir", str(run_dir), "--no-progress"),
    )


def eval_command(run_dir: Path, split: str) -> list[str]:
    return glowflow_command(
        "eval", str(run_dir), "--split", split, "--iw-samples", str(IW_SAMPLES), "--json"
    )


def scored(run_dir: Path, split: str) -> dict[str, Any]:
    """``glowflow eval``'s JSON for the run's best checkpoint on ``split``."""
    command = eval_command(run_dir, split)
    printed = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(printed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--budget", default="300", help="seconds per trial, or 'steps' (the preset's steps)"
    )
    parser.add_argument("--parallel", type=int, default=2, help="trainings at a time")
    parser.add_argument("--trials", nargs="+", default=list(TRIALS), choices=list(TRIALS))
    parser.add_argument("--work", default="runs/recipes", help="where the run folders go")
    parser.add_argument("--output", required=True, help="the JSON file to write")
    parser.add_argument(
        "--reuse", action="store_true", help="keep finished runs in --work, train the others"
    )
    args = parser.parse_args()
    if args.budget != "steps":
        float(args.budget)  # a number of seconds, or argparse-style failure below
    work = Path(args.work) / f"budget-{args.budget}"
    folders = {name: work / name.replace(" ", "").replace("+", "_") for name in args.trials}
    jobs = [(folders[n], train_command(TRIALS[n], args.budget, folders[n])) for n in args.trials]
    run_trainings(jobs, args.parallel, args.reuse)
    rows = []
    for name in args.trials:
        run_dir = folders[name]
        result = json.loads((run_dir / "result.json").read_text())
        val, test = scored(run_dir, "val"), scored(run_dir, "test")
        rows.append(
            {
                "trial": name,
                "val_iw_bpd": val["iw_bpd"],
                "val_iw_bpd_stderr": val["iw_bpd_stderr"],
                "val_bpd": val["bpd"],
                "test_iw_bpd": test["iw_bpd"],
                "test_iw_bpd_stderr": test["iw_bpd_stderr"],
                "test_bpd": test["bpd"],
                "dequantization": val["dequantization"],
                "best_step": result["best"]["step"],
                "steps": result["steps"],
                "validations": result.get("validations"),
                "wall_time_s": result["wall_time_s"],
                "command": shown(train_command(TRIALS[name], args.budget, run_dir)),
                "scored_by": shown(eval_command(run_dir, "val")),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    rows.sort(key=lambda row: row["val_iw_bpd"])
    output = {
        "machine": machine_description(),
        "torch": torch.__version__,
        "budget": args.budget,
        "parallel": args.parallel,
        "iw_samples": IW_SAMPLES,
        "ranked_by": "val_iw_bpd",
        "rows": rows,
    }
    Path(args.output).write_text(json.dumps(output, indent=2) + "\n")


if __name__ == "__main__":
    main()
