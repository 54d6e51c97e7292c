"""TarFlow's three inverses on one trained model: sampling images/s and the error of each
against the exact (plain) inverse from the same latents (the README's table).

    python benchmarks/tarflow_inverses.py runs/families/tarflow \\
        --output benchmarks/results/tarflow-inverses-digits.json

``plain`` recomputes the prefix for every token, ``cached`` keeps a preallocated key/value
cache (the default), ``jacobi`` iterates chunks of tokens in parallel to a tolerance. Each is
timed on ``--count`` samples at T = 1, best of ``--repeats``, one thread, in eval mode.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from glowflow.machine import machine_description
from glowflow.store import load_model

SETTINGS = {
    "plain": {"inverse": "plain"},
    "cached": {"inverse": "cached"},
    "jacobi (tol 1e-4)": {"inverse": "jacobi", "jacobi_tol": 1e-4, "jacobi_max_iter": 32},
    "jacobi (tol 1e-6)": {"inverse": "jacobi", "jacobi_tol": 1e-6, "jacobi_max_iter": 32},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a TarFlow run or model folder")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    flow = load_model(args.model).flow
    exact = flow.sample(
        args.count, 1.0, generator=torch.Generator().manual_seed(0), inverse="plain"
    )
    rows = []
    for name, options in SETTINGS.items():
        best = float("inf")
        for _ in range(args.repeats):
            generator = torch.Generator().manual_seed(0)
            start = time.perf_counter()
            samples = flow.sample(args.count, 1.0, generator=generator, **options)
            best = min(best, time.perf_counter() - start)
        error = (samples - exact).abs().max().item()
        rows.append(
            {"setting": name, **options, "images_per_s": args.count / best, "max_abs_error": error}
        )
        print(json.dumps(rows[-1]))
    output = {
        "model": args.model,
        "machine": machine_description(),
        "torch": torch.__version__,
        "count": args.count,
        "rows": rows,
    }
    Path(args.output).write_text(json.dumps(output, indent=2) + "\n")


if __name__ == "__main__":
    main()
