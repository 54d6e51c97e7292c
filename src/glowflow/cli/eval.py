"""``glowflow eval``: bits/dim of a trained model on a dataset split."""

from __future__ import annotations

import argparse
import json

from ..errors import ConfigError
from .common import (
    BATCH_SIZE,
    DATA_ROOT,
    DEVICE,
    MODEL,
    PRECISION,
    RAW_WEIGHTS,
    SEED,
    load,
    pick_device,
)

HELP = (
    "Bits/dim of a trained model on its test split (or --split): mean and standard error over "
    "images, eval mode, averaged over dequantization draws (given the labels for conditional "
    "models).\n\n"
    "Usage:\n"
    "  glowflow eval runs/digits --draws 8\n"
    "  glowflow eval pretrained:digits --json\n"
    "  glowflow eval runs/digits --split val --iw-samples 16\n"
    "  glowflow eval runs/digits --precision bf16 --raw-weights"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    MODEL.add(parser)
    parser.add_argument(
        "--split",
        default="test",
        choices=("test", "val", "train"),
        help="dataset split (val: the run's val_size held-out training images)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--draws",
        type=int,
        default=8,
        help="dequantization draws averaged per image (the run's uniform noise or "
        "learned q(u | x): the variational bound)",
    )
    parser.add_argument(
        "--iw-samples",
        type=int,
        default=0,
        metavar="K",
        help="also report the importance-weighted bound with K draws per image (0: not)",
    )
    BATCH_SIZE.add(
        parser,
        default=None,
        help="images per batch; none: the run's eval_batch_size (so that with "
        "the run's seed and 8 draws this repeats result.json exactly)",
    )
    SEED.add(parser, default=None, help="seed of the dequantization noise; none: the run's seed")
    DEVICE.add(parser)
    DATA_ROOT.add(parser)
    PRECISION.add(parser)
    RAW_WEIGHTS.add(parser)


def run(args: argparse.Namespace) -> int:
    from ..training.evaluate import Bound, evaluate_bpd, tightest

    if args.draws < 1 or (args.batch_size is not None and args.batch_size < 1):
        raise ConfigError("--draws and --batch-size must be >= 1")
    if args.iw_samples < 0:
        raise ConfigError(f"--iw-samples must be >= 0, got {args.iw_samples}")
    device = pick_device(args.device)
    loaded = load(args.model, device, args.raw_weights)
    settings, data = loaded.run_settings or {}, loaded.data
    dataset = loaded.dataset(args.split, args.data_root)
    if tuple(dataset.shape) != data.shape or dataset.n_bins != data.n_bins:
        raise ConfigError(
            f"{data.dataset} {args.split} gives shape {tuple(dataset.shape)} with "
            f"{dataset.n_bins} bins; the model was trained on {data.shape} with "
            f"{data.n_bins}"
        )
    seed = int(settings.get("seed", 0))
    options = dict(
        batch_size=args.batch_size or int(settings.get("eval_batch_size", 512)),
        device=device,
        seed=seed if args.seed is None else args.seed,
        conditional=loaded.conditional,
        precision=args.precision,
    )
    label = f"{args.split} bits/dim, {args.draws} draw{'s' * (args.draws != 1)}"
    result = evaluate_bpd(
        loaded.flow, dataset, loaded.dequantizer, draws=args.draws, progress=label, **options
    )
    report = {
        "checkpoint": str(loaded.source),
        "step": loaded.step,
        "ema": loaded.ema,
        "dataset": data.dataset,
        "split": args.split,
        "n_bins": data.n_bins,
        "conditional": loaded.conditional,
        "dequantization": loaded.record["dequantizer"]["kind"],
        "precision": args.precision,
        **result.to_dict(),
    }
    bounds = [Bound(report["dequantization"], result)]
    report["bound"] = bounds[0].name
    if args.iw_samples:
        weighted = evaluate_bpd(
            loaded.flow,
            dataset,
            loaded.dequantizer,
            draws=args.iw_samples,
            importance_weighted=True,
            progress=f"importance-weighted bound, K={args.iw_samples}",
            **options,
        )
        bounds.append(Bound("importance-weighted", weighted))
        report["iw_bpd"], report["iw_bpd_stderr"] = weighted.bpd, weighted.stderr
        report["iw_samples"] = args.iw_samples
        report["iw_bound"] = bounds[1].name
    head = tightest(bounds)
    report["headline_bpd"], report["headline_bound"] = head.result.bpd, head.name
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        others = "".join(f"; {b.name}: {b.result.bpd:.4f}" for b in bounds if b is not head)
        print(
            f"{args.split} bits/dim {head.result.bpd:.4f} +- {head.result.stderr:.4f} "
            f"[{head.name}{others}] ({result.num_images} images; {loaded.source}, "
            f"step {loaded.step})"
        )
    return 0
