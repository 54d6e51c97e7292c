"""``glowflow eval``: bits/dim of a trained model on a dataset split."""

from __future__ import annotations

import argparse
import json

HELP = (
    "Test-set bits/dim of a trained run or checkpoint: mean and standard error over images, "
    "eval mode, averaged over dequantization draws (given the labels for conditional models)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..precision import PRECISIONS

    parser.add_argument(
        "path",
        metavar="MODEL",
        help="a run folder (its best checkpoint, else its newest), a checkpoint, "
        "a pretrained folder, pretrained:NAME or a Hugging Face repo id",
    )
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
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per batch; none: the run's eval_batch_size (so that with "
        "the default seed and 8 draws this repeats result.json exactly)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the dequantization noise; none: the run's seed",
    )
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="device")
    parser.add_argument(
        "--data-root",
        default=None,
        metavar="DIR",
        help="dataset folder; none: the one the model was trained from",
    )
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="what the coupling and prior networks compute in; log-dets and "
        "prior terms stay fp32 (see glowflow.precision)",
    )
    parser.add_argument(
        "--raw-weights",
        action="store_true",
        help="evaluate the trained weights even when the run keeps an EMA",
    )


def run(args: argparse.Namespace) -> int:
    from ..pretrained import load_model
    from ..training.distributed import pick_device
    from ..training.evaluate import evaluate_bpd

    if args.draws < 1 or (args.batch_size is not None and args.batch_size < 1):
        raise ValueError("--draws and --batch-size must be >= 1")
    if args.iw_samples < 0:
        raise ValueError(f"--iw-samples must be >= 0, got {args.iw_samples}")
    device = pick_device(args.device)
    loaded = load_model(args.path, device, ema=False if args.raw_weights else None)
    config, data = loaded.train_config, loaded.data
    dataset = loaded.dataset(args.split, args.data_root)
    if tuple(dataset.shape) != data.shape or dataset.n_bins != data.n_bins:
        raise ValueError(
            f"{data.dataset} {args.split} gives shape {tuple(dataset.shape)} with "
            f"{dataset.n_bins} bins; the model was trained on {data.shape} with "
            f"{data.n_bins}"
        )
    seed = config.seed if config is not None else 0
    options = dict(
        batch_size=args.batch_size or (config.eval_batch_size if config else 512),
        device=device,
        seed=seed if args.seed is None else args.seed,
        conditional=loaded.conditional,
        precision=args.precision,
    )
    result = evaluate_bpd(loaded.flow, dataset, loaded.dequantizer, draws=args.draws, **options)
    report = {
        "checkpoint": str(loaded.source),
        "step": loaded.step,
        "ema": loaded.ema,
        "dataset": data.dataset,
        "split": args.split,
        "n_bins": data.n_bins,
        "conditional": loaded.conditional,
        "dequantization": config.dequantization if config else "uniform",
        "precision": args.precision,
        **result.to_dict(),
    }
    if args.iw_samples:
        weighted = evaluate_bpd(
            loaded.flow,
            dataset,
            loaded.dequantizer,
            draws=args.iw_samples,
            importance_weighted=True,
            **options,
        )
        report["iw_bpd"], report["iw_bpd_stderr"] = weighted.bpd, weighted.stderr
        report["iw_samples"] = args.iw_samples
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{args.split} bits/dim {result.bpd:.4f} +- {result.stderr:.4f} "
            f"({result.num_images} images x {result.draws} draws; {loaded.source}, "
            f"step {loaded.step})"
        )
        if args.iw_samples:
            print(
                f"importance-weighted bound ({args.iw_samples} draws) {report['iw_bpd']:.4f} "
                f"+- {report['iw_bpd_stderr']:.4f}"
            )
    return 0
