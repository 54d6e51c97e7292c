"""``glowflow convert``: another implementation's checkpoint as a glowflow pretrained folder."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

HELP = (
    "Convert a y0ast, rosinality, chaiyujin or TFP Glow checkpoint into a pretrained folder "
    "(config.json, model.safetensors, README.md), mapping every tensor exactly."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..convert import SOURCES

    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        choices=SOURCES,
        help="the implementation that wrote SOURCE",
    )
    parser.add_argument(
        "path",
        metavar="SOURCE",
        help="y0ast: glow_affine_coupling.pt (hparams.json beside it is read); "
        "rosinality: model_*.pt; chaiyujin: *.pkg; tfp: a "
        "tf.train.Checkpoint prefix or an .npz of its variables",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="pretrained folder to write")
    parser.add_argument(
        "--hparams",
        default=None,
        metavar="FILE",
        help="y0ast, chaiyujin: the hyper-parameter JSON; tfp: a JSON of the tfb.Glow's arguments",
    )
    parser.add_argument(
        "--dataset",
        default=None,
        help="the data's glowflow name (cifar10, celeba, folder:PATH, ...); "
        "default: from the hyper-parameters, else 'unknown'",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="rosinality: the image side (its state dict does not record it; "
        "default 64, its train.py's)",
    )
    parser.add_argument(
        "--n-bits",
        type=int,
        default=None,
        help="bits per channel of the data (default: the source's: 8; rosinality 5)",
    )
    parser.add_argument("--name", default=None, help="the model's name on its card")


def run(args: argparse.Namespace) -> int:
    from ..convert import convert

    options: dict = {}
    if args.source in ("y0ast", "chaiyujin", "tfp") and args.hparams:
        options["hparams"] = Path(args.hparams)
    elif args.hparams:
        raise ValueError(f"--hparams is not read for --from {args.source}")
    if args.source == "rosinality":
        options["image_size"] = args.image_size or 64
    elif args.image_size is not None:
        raise ValueError("--image-size is for --from rosinality (the others record it)")
    if args.n_bits is not None:
        options["n_bits"] = args.n_bits
    if args.dataset is not None:
        options["dataset"] = args.dataset
    converted = convert(args.source, Path(args.path), **options)
    command = shlex.join(["glowflow", *sys.argv[1:]]) if sys.argv[1:2] == ["convert"] else None
    out = converted.save(Path(args.out), command, args.name)
    print(out)
    return 0
