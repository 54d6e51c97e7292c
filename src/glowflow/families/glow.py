"""The Glow family (Kingma & Dhariwal 2018): :class:`~glowflow.GlowConfig`, its builder and
the presets for the embedded digits and the paper's datasets."""

from __future__ import annotations

from ..config import GlowConfig
from ..flow import Flow
from ..glow import Glow
from .base import LONG_RUN, Family


def build(config: GlowConfig) -> Flow:
    """``Flow(Glow(config))``: a standard normal base under the multi-scale Glow."""
    return Flow(Glow(config))


DIGITS = GlowConfig(
    output_shape=None,
    num_glow_blocks=2,
    num_steps_per_block=16,
    hidden_channels=64,
    coupling="affine",
    scale_fn="sigmoid",
    learn_top_prior=True,
)
"""The ``digits`` preset's model: small enough to train on 2 CPU cores in minutes."""

FAMILY = Family(
    name="glow",
    summary="Glow: ActNorm, invertible 1x1 convolutions and affine or additive couplings, "
    "multi-scale with learned split priors (Kingma & Dhariwal 2018)",
    config_class=GlowConfig,
    builder=build,
    template=DIGITS,
    presets={
        "digits": dict(final_iw_samples=16),
        "mnist": dict(
            LONG_RUN,
            name="mnist",
            dataset="mnist",
            val_size=5000,
            num_glow_blocks=2,
            num_steps_per_block=16,
            hidden_channels=256,
            warmup_steps=2000,
            max_steps=50_000,
            eval_every=2500,
            sample_every=2500,
            checkpoint_every=2500,
        ),
        "cifar10": dict(
            LONG_RUN,
            name="cifar10",
            dataset="cifar10",
            val_size=5000,
            num_glow_blocks=3,
            num_steps_per_block=32,
            hidden_channels=512,
            coupling="affine",
            permutation="invconv",
            learn_top_prior=True,
            lr=1e-3,
            batch_size=64,
            max_steps=200_000,
        ),
        "celeba64": dict(
            LONG_RUN,
            name="celeba64",
            dataset="celeba",
            val_size=0,
            image_size=64,
            n_bits=5,
            hflip=True,
            num_glow_blocks=4,
            num_steps_per_block=32,
            hidden_channels=512,
            coupling="affine",
            learn_top_prior=True,
            batch_size=32,
            max_steps=200_000,
            eval_batch_size=128,
        ),
        "celeba256": dict(
            LONG_RUN,
            name="celeba256",
            dataset="celeba",
            val_size=0,
            image_size=256,
            n_bits=5,
            hflip=True,
            num_glow_blocks=6,
            num_steps_per_block=32,
            hidden_channels=512,
            coupling="additive",
            learn_top_prior=True,
            batch_size=4,
            max_steps=300_000,
            init_images=64,
            eval_batch_size=16,
            eval_every=10_000,
            sample_count=16,
        ),
    },
    converters=("y0ast", "rosinality", "chaiyujin", "tfp"),
    best_recipes={
        # benchmarks/recipe_search.py --budget steps: the lowest validation bits/dim
        # (importance-weighted, K = 16) at the preset's 1,000 steps (README: recipe table)
        "digits": dict(coupling_dropout=0.1, dequantization="variational", lr=3e-3),
    },
    time_recipes={
        # benchmarks/recipe_search.py --budget 300: the lowest validation bits/dim among the
        # portable settings (bf16 networks led by 0.006, on this CPU's bf16 units)
        "digits": dict(lr=2e-3),
    },
)
