"""Bits/dim and round-trip error of a trained model per precision (the README's table).

    python benchmarks/precision_table.py pretrained:digits \\
        --output benchmarks/results/precision-digits.json

For each precision the networks run in (:mod:`glowflow.precision`): test bits/dim (uniform
dequantization, ``--draws`` draws per image, the same seeded noise for every precision) and
``max |decode(encode(x)) - x|`` over the dequantized test images. Speed is the benchmark's
business (``glowflow bench --precision ...``); this measures only what precision changes in
the numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from glowflow.data import load_dataset
from glowflow.dequantization import UniformDequantizer
from glowflow.precision import PRECISIONS, network_precision
from glowflow.store import load_model
from glowflow.training.evaluate import evaluate_bpd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "model", help="run folder, checkpoint, pretrained folder or pretrained:NAME"
    )
    parser.add_argument("--draws", type=int, default=8, help="dequantization draws per image")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--output", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    loaded = load_model(args.model, device)
    data = loaded.data
    dataset = load_dataset(
        data.dataset,
        data.data_root,
        "test",
        image_size=data.image_size,
        n_bits=data.n_bits,
        val_size=data.val_size,
    )
    dequantizer = UniformDequantizer(data.n_bins)
    levels = torch.stack([dataset[i][0] for i in range(len(dataset))])
    x, _ = dequantizer(levels, dequantizer.noise(levels, torch.Generator().manual_seed(0)))
    flow = loaded.flow.eval()
    rows = []
    for precision in PRECISIONS:
        result = evaluate_bpd(
            flow,
            dataset,
            dequantizer,
            draws=args.draws,
            batch_size=512,
            device=device,
            precision=precision,
        )
        with torch.inference_mode(), network_precision(precision, device):
            error = (flow.decode(flow.encode(x)) - x).abs()
        rows.append(
            {
                "precision": precision,
                "test_bpd": result.bpd,
                "test_bpd_stderr": result.stderr,
                "decode_max_abs_error": error.max().item(),
                "decode_mean_abs_error": error.mean().item(),
                "images_with_error_above_1e-5": int((error.flatten(1).amax(1) > 1e-5).sum()),
                "images": len(x),
                "bin_width": 1 / data.n_bins,
            }
        )
        print(rows[-1])
    document = {
        "model": args.model,
        "dataset": data.dataset,
        "draws": args.draws,
        "torch": torch.__version__,
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
