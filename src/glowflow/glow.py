"""The Glow bijector (Kingma & Dhariwal 2018) with TensorFlow Probability's parameters."""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import torch
from torch import Tensor, nn

from .bijectors.actnorm import ActNorm
from .bijectors.base import Bijector, Shape, zero_logdet
from .bijectors.chain import Chain
from .bijectors.coupling import (
    COUPLING_KINDS,
    SCALE_FUNCTIONS,
    ChannelCoupling,
    CheckerboardCoupling,
    network_channels,
)
from .bijectors.exit import Exit
from .bijectors.invconv import InvertibleConv1x1, InvertibleConv1x1LU
from .bijectors.networks import NetworkFn, build_network, glow_network
from .bijectors.permutation import ChannelPermutation
from .bijectors.prior import ClassConditionalPrior, LearnedPrior
from .bijectors.squeeze import Squeeze
from .memory import check_memory_mode, run_steps
from .seeding import seeded
from .validation import check_batch

PERMUTATIONS = ("invconv", "invconv_lu", "shuffle", "reverse")
MASKS = ("channel", "checkerboard", "checkerboard_channel")


class GlowEncoding(NamedTuple):
    """What :meth:`Glow.forward_levels` returns.

    Attributes:
        latents: the per-level latents, finest first; each ``(B, C_i, H_i, W_i)``.
        logdet: ``log|det|`` of the whole map, ``(B,)``.
        top: the top latent before the learned prior (what a classifier head reads).
    """

    latents: list[Tensor]
    logdet: Tensor
    top: Tensor


def make_permutation(name: str, num_channels: int) -> Bijector:
    """The channel-mixing layer of a flow step, by name (see :data:`PERMUTATIONS`)."""
    if name == "invconv":
        return InvertibleConv1x1(num_channels)
    if name == "invconv_lu":
        return InvertibleConv1x1LU(num_channels)
    if name == "shuffle":
        return ChannelPermutation.shuffle(num_channels)
    if name == "reverse":
        return ChannelPermutation.reverse(num_channels)
    raise ValueError(f"permutation must be one of {PERMUTATIONS}, got {name!r}")


class GlowLevel(nn.Module):
    """One level of the multi-scale architecture: squeeze, ``K`` flow steps, exit."""

    def __init__(self, squeeze: Squeeze, steps: Sequence[Chain], exit: Exit) -> None:
        super().__init__()
        self.squeeze = squeeze
        self.steps = nn.ModuleList(steps)
        self.exit = exit


class Glow(Bijector):
    """Glow: ``L`` levels of [squeeze -> ``K`` x (ActNorm -> 1x1 conv -> coupling) -> exit].

    Direction: ``forward`` maps images ``(B, C, H, W)`` to the flat latent ``(B, C*H*W)``
    (TFP's rank-1 latent); :meth:`forward_levels` / :meth:`inverse_levels` give and take the
    per-level latents (finest level first, the top latent last). Each exit's latent is
    whitened by a learned coupling on the channels that go on, and the top latent by the
    optional learned (class-conditional) prior, so the base distribution is ``N(0, I)``.

    Args (TFP's names and semantics, shapes channels-first):
        output_shape: image shape ``(C, H, W)``; ``H`` and ``W`` must be divisible by
            ``2 ** num_glow_blocks``.
        num_glow_blocks: number of levels ``L``.
        num_steps_per_block: flow steps ``K`` per level.
        coupling_bijector_fn: ``fn(input_shape)`` or ``fn(input_shape, output_channels)``
            given the conditioning part's shape ``(C_b, H, W)`` and the transformed part's
            channel count ``C_a``; returns an ``nn.Module`` with ``2 C_a`` output channels
            (affine: shift, then scale logits) or ``C_a`` (additive), or a :class:`Bijector`
            used as the coupling itself. ``None`` builds :func:`glow_network`.
        exit_bijector_fn: likewise for the exits, ``fn(input_shape, output_channels)`` given
            the continuing part's shape and the exiting channel count; the module gives
            ``2 * output_channels`` channels (shift, log-scale). ``None``: a zero conv.
        grab_after_block: fraction of the remaining channels that exit after each block,
            ``floor(fraction * C)`` channels; length ``L`` (or ``L - 1``, the last block then
            exiting none). Default: one half after every block but the last. Whatever remains
            after the last block is the top latent.
        use_actnorm: put an ActNorm (data-dependent init) first in every step.
        seed: makes the whole initialization (1x1 convs, shuffles, networks) reproducible
            without touching the global RNG.
        validate_args: check shapes, dtypes and finiteness at every public entry.
    Options TFP lacks:
        hidden_channels: width of the default coupling network (the paper: 512).
        coupling: ``"affine"`` or ``"additive"``.
        permutation: ``"invconv"``, ``"invconv_lu"``, ``"shuffle"`` or ``"reverse"``.
        scale_fn: affine scale, ``"exp"`` or ``"sigmoid"`` (``sigmoid(h + 2)``, official code).
        mask: ``"channel"`` (Glow), ``"checkerboard"`` (parity alternating step to step), or
            ``"checkerboard_channel"`` (RealNVP: the first ``ceil(K/2)`` steps of each level
            checkerboard, the rest channel-wise).
        learn_top_prior: a learned Gaussian prior on the top latent.
        num_classes: a class-conditional prior on the top latent (context = labels).
        memory_mode: how training runs each level's flow steps, ``"none"`` (plain autograd),
            ``"checkpoint"`` or ``"invertible"`` (inputs rebuilt from outputs in the backward
            pass, activation memory flat in depth); see :mod:`glowflow.memory`.
    """

    def __init__(
        self,
        output_shape: Sequence[int] = (3, 32, 32),
        num_glow_blocks: int = 3,
        num_steps_per_block: int = 32,
        coupling_bijector_fn: Optional[NetworkFn] = None,
        exit_bijector_fn: Optional[NetworkFn] = None,
        grab_after_block: Optional[Sequence[float]] = None,
        use_actnorm: bool = True,
        seed: Optional[int] = None,
        validate_args: bool = False,
        *,
        hidden_channels: int = 512,
        coupling: str = "affine",
        permutation: str = "invconv",
        scale_fn: str = "exp",
        mask: str = "channel",
        learn_top_prior: bool = False,
        num_classes: Optional[int] = None,
        memory_mode: str = "none",
    ) -> None:
        super().__init__()
        self.memory_mode = check_memory_mode(memory_mode)
        self.output_shape = self._check_output_shape(output_shape, num_glow_blocks)
        if num_steps_per_block < 1:
            raise ValueError(f"num_steps_per_block must be >= 1, got {num_steps_per_block}")
        if coupling not in COUPLING_KINDS:
            raise ValueError(f"coupling must be one of {COUPLING_KINDS}, got {coupling!r}")
        if permutation not in PERMUTATIONS:
            raise ValueError(f"permutation must be one of {PERMUTATIONS}, got {permutation!r}")
        if scale_fn not in SCALE_FUNCTIONS:
            raise ValueError(f"scale_fn must be one of {tuple(SCALE_FUNCTIONS)}, got {scale_fn!r}")
        if mask not in MASKS:
            raise ValueError(f"mask must be one of {MASKS}, got {mask!r}")
        self.event_shape = self.output_shape
        self.num_glow_blocks = num_glow_blocks
        self.num_steps_per_block = num_steps_per_block
        self.grab_after_block = self._check_grab(grab_after_block, num_glow_blocks)
        self.validate_args = validate_args
        self.config = dict(
            hidden_channels=hidden_channels, coupling=coupling, permutation=permutation,
            scale_fn=scale_fn, mask=mask, use_actnorm=use_actnorm,
        )
        with seeded(seed):
            self._build(coupling_bijector_fn, exit_bijector_fn, learn_top_prior, num_classes)

    @staticmethod
    def _check_output_shape(output_shape: Sequence[int], num_glow_blocks: int) -> Shape:
        shape = tuple(int(s) for s in output_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"output_shape must be (C, H, W) with positive sizes, got {shape}")
        if num_glow_blocks < 1:
            raise ValueError(f"num_glow_blocks must be >= 1, got {num_glow_blocks}")
        _, height, width = shape
        factor = 2**num_glow_blocks
        if height % factor or width % factor:
            raise ValueError(
                f"output_shape {shape}: H={height} and W={width} must be divisible by "
                f"2**num_glow_blocks = {factor} (num_glow_blocks={num_glow_blocks})"
            )
        return shape

    @staticmethod
    def _check_grab(grab: Optional[Sequence[float]], levels: int) -> tuple[float, ...]:
        if grab is None:
            return tuple([0.5] * (levels - 1) + [0.0])
        fractions = tuple(float(f) for f in grab)
        if len(fractions) == levels - 1:
            fractions = fractions + (0.0,)
        if len(fractions) != levels:
            raise ValueError(
                f"grab_after_block needs {levels} (or {levels - 1}) fractions, one per block, "
                f"got {len(fractions)}: {tuple(grab)}"
            )
        for index, fraction in enumerate(fractions):
            if not 0.0 <= fraction <= 1.0 or math.isnan(fraction):
                raise ValueError(
                    f"grab_after_block[{index}] = {fraction} is not a fraction in [0, 1]"
                )
        return fractions

    def _build(
        self,
        coupling_fn: Optional[NetworkFn],
        exit_fn: Optional[NetworkFn],
        learn_top_prior: bool,
        num_classes: Optional[int],
    ) -> None:
        channels, height, width = self.output_shape
        levels = []
        self.latent_shapes: list[Shape] = []
        for index, fraction in enumerate(self.grab_after_block):
            channels, height, width = channels * 4, height // 2, width // 2
            if channels == 0:
                raise ValueError(
                    f"grab_after_block[{index - 1}] = 1.0 exits every channel before block "
                    f"{index}; only the last fraction may be 1.0"
                )
            shape = (channels, height, width)
            steps = [self._make_step(shape, k, coupling_fn) for k in range(self.num_steps_per_block)]
            num_exit = math.floor(fraction * channels)
            levels.append(GlowLevel(Squeeze(), steps, Exit(shape, num_exit, exit_fn)))
            if num_exit:
                self.latent_shapes.append((num_exit, height, width))
            channels -= num_exit
        if channels:
            self.latent_shapes.append((channels, height, width))
        self.levels = nn.ModuleList(levels)
        self.has_top_remainder = channels > 0
        top_shape = self.latent_shapes[-1]
        self.top_prior: Optional[LearnedPrior] = None
        if num_classes is not None:
            self.top_prior = ClassConditionalPrior(top_shape, num_classes)
        elif learn_top_prior:
            self.top_prior = LearnedPrior(top_shape)

    def _make_step(self, shape: Shape, index: int, coupling_fn: Optional[NetworkFn]) -> Chain:
        channels, height, width = shape
        kind, hidden = self.config["coupling"], self.config["hidden_channels"]
        if coupling_fn is None:
            coupling_fn = lambda input_shape, out: glow_network(  # noqa: E731
                input_shape[0], network_channels(kind, out), hidden
            )
        mask = self.config["mask"]
        if mask == "checkerboard_channel":
            mask = "checkerboard" if index < (self.num_steps_per_block + 1) // 2 else "channel"
        if mask == "checkerboard":
            condition_shape, transformed = shape, channels
        else:
            transformed = channels // 2
            condition_shape = (channels - transformed, height, width)
        network = build_network(
            coupling_fn, condition_shape, transformed,
            network_channels(kind, transformed), "coupling_bijector_fn",
        )
        coupling: Bijector
        if isinstance(network, Bijector):
            coupling = network
        elif mask == "checkerboard":
            coupling = CheckerboardCoupling(shape, network, kind, self.config["scale_fn"], index % 2)
        else:
            coupling = ChannelCoupling(channels, network, kind, self.config["scale_fn"], transformed)
        layers = [ActNorm(channels)] if self.config["use_actnorm"] else []
        layers += [make_permutation(self.config["permutation"], channels), coupling]
        return Chain(*layers, event_shape=shape)

    # ----------------------------------------------------------------------------- running
    def run_steps(self, steps: nn.ModuleList, h: Tensor, context: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        """Apply a level's flow steps in :attr:`memory_mode`; returns ``(h, summed log-det)``."""
        return run_steps(steps, h, context, self.memory_mode)

    def forward_levels(self, x: Tensor, context: Optional[Tensor] = None) -> GlowEncoding:
        """Images ``(B, C, H, W)`` -> per-level latents (finest first), log-det, raw top."""
        if self.validate_args:
            check_batch(x, self.output_shape, "Glow.forward")
        total = zero_logdet(x)
        latents: list[Tensor] = []
        h = x
        for level in self.levels:
            h, _ = level.squeeze(h)
            h, logdet = self.run_steps(level.steps, h, context)
            h, exit_logdet = level.exit(h, context)
            total = total + logdet + exit_logdet
            h, exiting = level.exit.split(h)
            if exiting.shape[1]:
                latents.append(exiting)
        if self.has_top_remainder:
            latents.append(h)
        top = latents[-1]
        if self.top_prior is not None:
            latents[-1], logdet = self.top_prior(top, context)
            total = total + logdet
        return GlowEncoding(latents, total, top)

    def inverse_levels(
        self, latents: Sequence[Tensor], context: Optional[Tensor] = None
    ) -> tuple[Tensor, Tensor]:
        """Per-level latents (as from :meth:`forward_levels`) -> ``(images, log-det)``, exact."""
        latents = list(latents)
        if len(latents) != len(self.latent_shapes):
            raise ValueError(
                f"Glow.inverse: expected {len(self.latent_shapes)} latents of shapes "
                f"{self.latent_shapes}, got {len(latents)}"
            )
        if self.validate_args:
            for index, (z, shape) in enumerate(zip(latents, self.latent_shapes)):
                check_batch(z, shape, "Glow.inverse", f"latent {index}")
        total = zero_logdet(latents[0])
        if self.top_prior is not None:
            latents[-1], logdet = self.top_prior.inverse(latents[-1], context)
            total = total + logdet
        if self.has_top_remainder:
            h = latents.pop()
        else:
            top = latents[-1]
            h = top.new_zeros(top.shape[0], 0, *top.shape[2:])
        for level in reversed(self.levels):
            if level.exit.num_exit:
                h = level.exit.merge(h, latents.pop())
            h, logdet = level.exit.inverse(h, context)
            total = total + logdet
            for step in reversed(level.steps):
                h, logdet = step.inverse(h, context)
                total = total + logdet
            h, _ = level.squeeze.inverse(h)
        return h, total

    def flatten_latents(self, latents: Sequence[Tensor]) -> Tensor:
        """Per-level latents -> the flat ``(B, D)`` latent (levels concatenated in order)."""
        return torch.cat([z.reshape(z.shape[0], -1) for z in latents], dim=1)

    def unflatten_latents(self, z: Tensor) -> list[Tensor]:
        """The flat ``(B, D)`` latent -> per-level latents; inverse of :meth:`flatten_latents`."""
        sizes = [math.prod(shape) for shape in self.latent_shapes]
        if z.dim() != 2 or z.shape[1] != sum(sizes):
            raise ValueError(f"Glow: flat latent must have shape (B, {sum(sizes)}), got {tuple(z.shape)}")
        parts = z.split(sizes, dim=1)
        return [p.reshape(z.shape[0], *shape) for p, shape in zip(parts, self.latent_shapes)]

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        encoding = self.forward_levels(x, context)
        return self.flatten_latents(encoding.latents), encoding.logdet

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return self.inverse_levels(self.unflatten_latents(y), context)

    def class_logits(self, top: Tensor) -> Optional[Tensor]:
        """Classifier logits from the raw top latent, when the prior is class-conditional."""
        if isinstance(self.top_prior, ClassConditionalPrior):
            return self.top_prior.class_logits(top)
        return None

    def forward_shape(self, shape: Shape) -> Shape:
        if tuple(shape) != self.output_shape:
            raise ValueError(f"Glow was built for event shape {self.output_shape}, got {shape}")
        return (math.prod(self.output_shape),)

    def inverse_shape(self, shape: Shape) -> Shape:
        if tuple(shape) != (math.prod(self.output_shape),):
            raise ValueError(f"Glow's latent has shape ({math.prod(self.output_shape)},), got {shape}")
        return self.output_shape
