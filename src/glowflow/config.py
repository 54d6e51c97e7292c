"""``GlowConfig``: the one description of a Glow architecture (importable without torch).

Every option of :class:`~glowflow.Glow` is a field here, in TensorFlow Probability's names
(``output_shape``, ``num_glow_blocks``, ``num_steps_per_block``, ``grab_after_block``,
``use_actnorm``, ``seed``, ``validate_args``) plus glowflow's named options. Each field carries
its help text and, where it has them, its choices, in the field's metadata; validation lives in
:meth:`GlowConfig.__post_init__`. Everything else reads them from here: ``Glow(config)``, the
``glowflow train`` flags, config files and presets (through
:class:`~glowflow.training.config.TrainConfig`, which nests a ``GlowConfig``), checkpoints and
the benchmark. Adding an option is one new field here plus the code that uses it.

>>> config = GlowConfig(output_shape=(1, 8, 8), num_glow_blocks=2, num_steps_per_block=4)
>>> config.latent_shapes()
[(2, 4, 4), (8, 2, 2)]
>>> GlowConfig.from_dict(config.to_dict()) == config
True
>>> GlowConfig(permutation="rotate")  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
glowflow.errors.ConfigError: GlowConfig.permutation must be one of ('invconv', ..., 'reverse'), got 'rotate'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from .config_base import FlowConfig, option
from .errors import ConfigError

Shape = tuple[int, ...]

NETWORK_OUTPUTS = ("shift_scale", "scale_shift", "interleaved")
"""Orders of a network's ``2 C`` output channels into two ``C``-channel parts (see
``GlowConfig.coupling_output``)."""


@dataclass(frozen=True)
class GlowConfig(FlowConfig):
    """A Glow architecture: ``L`` levels of [squeeze -> ``K`` x (ActNorm -> 1x1 conv ->
    coupling) -> exit], then the top latent with an optional learned prior.

    Shapes are channels-first. See each field's ``help`` (``GlowConfig.help(name)``) and
    :class:`~glowflow.Glow` for the semantics.
    """

    # TensorFlow Probability's parameters
    output_shape: Optional[tuple[int, ...]] = option(
        (3, 32, 32),
        "image shape (C, H, W); H and W divisible by 2**num_glow_blocks (none: "
        "not known yet, a template whose data decides it)",
        role="shape",
    )
    num_glow_blocks: int = option(3, "levels L of the multi-scale architecture")
    num_steps_per_block: int = option(32, "flow steps K per level")
    grab_after_block: Optional[tuple[float, ...]] = option(
        None,
        "fraction of the remaining channels that exits after each block (L, or L - 1 "
        "values; none: one half after every block but the last)",
    )
    use_actnorm: bool = option(True, "an ActNorm (data-dependent init) first in every flow step")
    seed: Optional[int] = option(
        None,
        "seed of the whole initialization (1x1 convs, shuffles, networks); none: global RNG",
        role="seed",
    )
    validate_args: bool = option(
        False, "check shapes, dtypes and finiteness at every entry", role="runtime"
    )
    # glowflow's options
    hidden_channels: int = option(512, "width of the default coupling network (paper: 512)")
    coupling: Optional[str] = option(
        None,
        "coupling layer; none: decided by the network's output channels as in TFP (the "
        "default network: affine)",
        ("affine", "additive"),
    )
    coupling_dropout: float = option(
        0.0,
        "dropout rate between the hidden layers of the default coupling network (training "
        "only; encoding and decoding in eval mode stay exact)",
        role="regularization",
    )
    permutation: str = option(
        "invconv",
        "channel mixing between couplings",
        ("invconv", "invconv_lu", "shuffle", "reverse"),
    )
    scale_fn: str = option(
        "exp",
        "affine coupling scale: exp(h), or sigmoid(h + 2) as in TFP's and the official Glow code",
        ("exp", "sigmoid"),
    )
    coupling_network: str = option(
        "glow",
        "hidden layers of the default coupling network: glow (3x3 and 1x1 convolutions "
        "with biases) or glow_actnorm (bias-free convolutions each followed by an "
        "ActNorm, as in the official code and the y0ast and chaiyujin ports)",
        ("glow", "glow_actnorm"),
    )
    coupling_output: str = option(
        "shift_scale",
        "how an affine coupling network's output channels split: shift_scale "
        "(first half shift, second half scale logits), scale_shift (TFP's Glow, "
        "rosinality's port) or interleaved (even channels shift, odd channels "
        "scale: the official code, y0ast's and chaiyujin's ports)",
        NETWORK_OUTPUTS,
    )
    coupling_shift: str = option(
        "after_scale",
        "affine coupling update: after_scale, y = x * s + t, or before_scale, "
        "y = (x + t) * s (the official code and its PyTorch ports)",
        ("after_scale", "before_scale"),
    )
    exit_prior: str = option(
        "affine",
        "split prior at each exit, from the network's (a, b) = NN(continuing): "
        "affine, z' = z * exp(b) + a, or gaussian, z' = (z - a) * exp(-b), a "
        "Gaussian with mean a and log-sigma b (the PyTorch ports' split prior)",
        ("affine", "gaussian"),
    )
    exit_output: str = option(
        "shift_scale",
        "how the exit network's output channels split into (a, b) of exit_prior: "
        "as coupling_output (rosinality: shift_scale; y0ast, chaiyujin: "
        "interleaved)",
        NETWORK_OUTPUTS,
    )
    zero_conv_padding: str = option(
        "zeros",
        "border of the zero-initialized 3x3 convolutions that end the default coupling "
        "and exit networks: zeros, or ones (rosinality's port pads with 1)",
        ("zeros", "ones"),
    )
    mask: str = option(
        "channel",
        "coupling mask: channel (Glow), checkerboard, or checkerboard_channel "
        "(RealNVP: checkerboard in the first half of each level's steps)",
        ("channel", "checkerboard", "checkerboard_channel"),
    )
    learn_top_prior: bool = option(False, "a learned Gaussian prior on the top latent")
    num_classes: Optional[int] = option(
        None, "a class-conditional prior on the top latent with this many classes", role="classes"
    )
    memory_mode: str = option(
        "none",
        "activation memory in training: none, checkpoint (recompute each step) or "
        "invertible (rebuild inputs from outputs)",
        ("none", "checkpoint", "invertible"),
        role="runtime",
    )

    def check(self) -> None:
        self._check_numbers()

    def _check_numbers(self) -> None:
        for name in ("num_glow_blocks", "num_steps_per_block", "hidden_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"GlowConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.coupling_dropout < 1.0:
            raise ConfigError(
                f"GlowConfig.coupling_dropout must be in [0, 1), got {self.coupling_dropout}"
            )
        if self.coupling_dropout and self.memory_mode == "invertible":
            raise ConfigError(
                "GlowConfig: coupling_dropout needs memory_mode 'none' or "
                "'checkpoint'; 'invertible' re-runs each network and would draw "
                "another dropout mask than the forward pass"
            )
        if self.num_classes is not None and self.num_classes < 2:
            raise ConfigError(f"GlowConfig.num_classes must be >= 2, got {self.num_classes}")
        self.exit_fractions()  # validates grab_after_block
        if self.output_shape is not None:
            self._check_shape()

    def _check_shape(self) -> None:
        assert self.output_shape is not None
        if len(self.output_shape) != 3 or min(self.output_shape) < 1:
            raise ConfigError(
                f"GlowConfig.output_shape must be (C, H, W) with positive sizes, "
                f"got {self.output_shape}"
            )
        _, height, width = self.output_shape
        factor = 2**self.num_glow_blocks
        if height % factor or width % factor:
            raise ConfigError(
                f"GlowConfig.output_shape {self.output_shape}: H={height} and W={width} must be "
                f"divisible by 2**num_glow_blocks = {factor} (num_glow_blocks="
                f"{self.num_glow_blocks})"
            )
        self.exit_counts()  # validates that channels remain until the last block

    # ---------------------------------------------------------------------------- derived
    def exit_fractions(self) -> tuple[float, ...]:
        """``grab_after_block`` with one fraction per block (the default, or ``L - 1`` values
        with a final 0 appended)."""
        levels = self.num_glow_blocks
        if self.grab_after_block is None:
            return tuple([0.5] * (levels - 1) + [0.0])
        fractions = tuple(self.grab_after_block)
        if len(fractions) == levels - 1:
            fractions += (0.0,)
        if len(fractions) != levels:
            raise ConfigError(
                f"GlowConfig.grab_after_block needs {levels} (or {levels - 1}) fractions, one "
                f"per block, got {len(self.grab_after_block)}: {self.grab_after_block}"
            )
        for index, fraction in enumerate(fractions):
            if math.isnan(fraction) or not 0.0 <= fraction <= 1.0:
                raise ConfigError(
                    f"GlowConfig.grab_after_block[{index}] = {fraction} is not a fraction in [0, 1]"
                )
        return fractions

    def level_shapes(self) -> list[Shape]:
        """The ``(C, H, W)`` each level's flow steps act on (after its squeeze)."""
        if self.output_shape is None:
            raise ConfigError(
                "GlowConfig.output_shape is none: give the image shape (C, H, W) to build a Glow"
            )
        channels, height, width = self.output_shape
        shapes = []
        for fraction in self.exit_fractions():
            channels, height, width = channels * 4, height // 2, width // 2
            shapes.append((channels, height, width))
            channels -= math.floor(fraction * channels)
        return shapes

    def exit_counts(self) -> list[int]:
        """Channels exiting after each block: ``floor(fraction * C)`` of the level's ``C``."""
        counts = []
        for index, (shape, fraction) in enumerate(zip(self.level_shapes(), self.exit_fractions())):
            counts.append(math.floor(fraction * shape[0]))
            if counts[-1] == shape[0] and index < self.num_glow_blocks - 1:
                raise ConfigError(
                    f"GlowConfig.grab_after_block[{index}] = {fraction} exits every channel "
                    f"before block {index + 1}; only the last fraction may be 1.0"
                )
        return counts

    def latent_shapes(self) -> list[Shape]:
        """Shapes of the per-level latents, finest first: each level's exiting channels, then
        the top latent (what remains after the last block); latents with no channel are left
        out."""
        levels, counts = self.level_shapes(), self.exit_counts()
        shapes = [(count, height, width) for (_, height, width), count in zip(levels, counts)]
        channels, height, width = levels[-1]
        shapes.append((channels - counts[-1], height, width))
        return [shape for shape in shapes if shape[0] > 0]
