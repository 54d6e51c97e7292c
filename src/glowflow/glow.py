"""The Glow bijector (Kingma & Dhariwal 2018) with TensorFlow Probability's parameters."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from .bijectors.actnorm import ActNorm
from .bijectors.base import Bijector, Shape, zero_logdet
from .bijectors.chain import Chain
from .bijectors.coupling import ChannelCoupling, CheckerboardCoupling, network_channels
from .bijectors.exit import Exit
from .bijectors.invconv import InvertibleConv1x1, InvertibleConv1x1LU
from .bijectors.multiscale import LevelEncoding, MultiScaleBijector
from .bijectors.networks import NetworkFn, build_coupling_network, glow_network
from .bijectors.permutation import ChannelPermutation
from .bijectors.prior import ClassConditionalPrior, LearnedPrior
from .bijectors.squeeze import Squeeze
from .config import GlowConfig
from .errors import ConfigError
from .memory import run_steps
from .seeding import seeded
from .validation import check_batch, check_event_shape

TFP_ARGUMENTS = (
    "output_shape",
    "num_glow_blocks",
    "num_steps_per_block",
    "coupling_bijector_fn",
    "exit_bijector_fn",
    "grab_after_block",
    "use_actnorm",
    "seed",
    "validate_args",
)
"""TFP's ``tfb.Glow`` parameters in its positional order; ``Glow`` takes them the same way."""


def make_permutation(name: str, num_channels: int) -> Bijector:
    """The channel-mixing layer of a flow step, by name (``GlowConfig.choices("permutation")``)."""
    if name == "invconv":
        return InvertibleConv1x1(num_channels)
    if name == "invconv_lu":
        return InvertibleConv1x1LU(num_channels)
    if name == "shuffle":
        return ChannelPermutation.shuffle(num_channels)
    if name == "reverse":
        return ChannelPermutation.reverse(num_channels)
    raise ConfigError(
        f"permutation must be one of {GlowConfig.choices('permutation')}, got {name!r}"
    )


class GlowLevel(nn.Module):
    """One level of the multi-scale architecture: squeeze, ``K`` flow steps, exit."""

    def __init__(self, squeeze: Squeeze, steps: Sequence[Chain], exit: Exit) -> None:
        super().__init__()
        self.squeeze = squeeze
        self.steps = nn.ModuleList(steps)
        self.exit = exit


def glow_arguments(
    args: Sequence[Any], kwargs: dict[str, Any]
) -> tuple[GlowConfig, Optional[NetworkFn], Optional[NetworkFn]]:
    """``(config, coupling_bijector_fn, exit_bijector_fn)`` from ``Glow``'s arguments: a
    :class:`GlowConfig` first (optionally with field overrides as keywords), or TFP's
    parameters (positional in :data:`TFP_ARGUMENTS` order, or by name) and glowflow's options
    by name."""
    values = dict(kwargs)
    base = GlowConfig()
    if args and isinstance(args[0], GlowConfig):
        base, args = args[0], args[1:]
        if args:
            raise TypeError("Glow(config, ...): give further options by name")
    if len(args) > len(TFP_ARGUMENTS):
        raise TypeError(
            f"Glow takes at most {len(TFP_ARGUMENTS)} positional arguments "
            f"{TFP_ARGUMENTS}, got {len(args)}"
        )
    for name, value in zip(TFP_ARGUMENTS, args):
        if name in values:
            raise TypeError(f"Glow got multiple values for argument {name!r}")
        values[name] = value
    coupling_fn = values.pop("coupling_bijector_fn", None)
    exit_fn = values.pop("exit_bijector_fn", None)
    return base.replace(**values) if values else base, coupling_fn, exit_fn


class Glow(MultiScaleBijector):
    """Glow: ``L`` levels of [squeeze -> ``K`` x (ActNorm -> 1x1 conv -> coupling) -> exit].

    ``Glow(config)`` with a :class:`~glowflow.GlowConfig`, or ``Glow(**options)`` with its
    fields by name, or TFP's positional signature
    ``Glow(output_shape, num_glow_blocks, num_steps_per_block, coupling_bijector_fn,
    exit_bijector_fn, grab_after_block, use_actnorm, seed, validate_args)``; the two network
    functions are not part of the (serializable) config.

    Direction: ``forward`` maps images ``(B, C, H, W)`` to the flat latent ``(B, C*H*W)``
    (the per-level latents concatenated; :mod:`glowflow.convert.tfp_order` maps it to TFP's order);
    :meth:`forward_levels` / :meth:`inverse_levels` give and take the per-level latents (finest
    level first, the top latent last). Each exit's latent is whitened by a learned coupling on
    the channels that go on, and the top latent by the optional learned (class-conditional)
    prior, so the base distribution is ``N(0, I)``.

    Network functions (TFP's semantics, shapes channels-first):
        coupling_bijector_fn: called with the conditioning part's shape ``(C_b, H, W)`` and,
            when it has a second required positional parameter, the transformed part's channel
            count ``C_a`` (parameters with defaults keep them, e.g. TFP's
            ``fn(input_shape, num_hidden=400)``). Returns an ``nn.Module`` with ``C_a`` output
            channels (additive coupling, a shift) or ``2 C_a`` (affine: shift, then scale
            logits) -- with ``coupling=None`` the channel count decides, as in TFP -- or a
            :class:`Bijector` used as the coupling itself. ``None`` builds :func:`glow_network`.
        exit_bijector_fn: likewise for the exits, given the continuing part's shape and the
            exiting channel count; the module gives ``2 * exiting`` channels (shift,
            log-scale), or is a :class:`Bijector` on the whole tensor. ``None``: a zero conv.

    An image whose shape is not ``output_shape`` is a ``ValueError`` whether or not
    ``validate_args`` is set (one shape comparison at the entry).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        config, coupling_fn, exit_fn = glow_arguments(args, kwargs)
        self.config = config
        self._custom_networks = coupling_fn is not None or exit_fn is not None
        self.event_shape = tuple(config.output_shape)
        self.latent_shapes = config.latent_shapes()
        with seeded(config.seed):
            self._build(coupling_fn, exit_fn)

    # Read-only views of the config, in TFP's names.
    output_shape = property(lambda self: self.config.output_shape)
    num_glow_blocks = property(lambda self: self.config.num_glow_blocks)
    num_steps_per_block = property(lambda self: self.config.num_steps_per_block)
    grab_after_block = property(lambda self: self.config.exit_fractions())
    validate_args = property(lambda self: self.config.validate_args)

    @property
    def complete_config(self) -> Optional[GlowConfig]:
        """The config when it alone rebuilds this Glow (what a model folder stores); ``None``
        when user network functions (``coupling_bijector_fn``, ``exit_bijector_fn``) built it,
        which no config can describe."""
        return None if self._custom_networks else self.config

    @property
    def memory_mode(self) -> str:
        """How training runs the flow steps (see :mod:`glowflow.memory`); settable, since it
        changes no weight."""
        return self.config.memory_mode

    @memory_mode.setter
    def memory_mode(self, mode: str) -> None:
        self.config = self.config.replace(memory_mode=mode)

    @property
    def has_top_remainder(self) -> bool:
        """Whether channels remain after the last block's exit (the usual case)."""
        return self.config.exit_counts()[-1] < self.config.level_shapes()[-1][0]

    def _build(self, coupling_fn: Optional[NetworkFn], exit_fn: Optional[NetworkFn]) -> None:
        config = self.config
        levels = []
        for shape, num_exit in zip(config.level_shapes(), config.exit_counts()):
            steps = [
                self._make_step(shape, k, coupling_fn) for k in range(config.num_steps_per_block)
            ]
            exit = Exit(
                shape,
                num_exit,
                exit_fn,
                config.exit_prior,
                config.exit_output,
                config.zero_conv_padding,
            )
            levels.append(GlowLevel(Squeeze(), steps, exit))
        self.levels = nn.ModuleList(levels)
        # Latent slots: each level's exiting part, then the top; the empty ones are not latents.
        channels, height, width = config.level_shapes()[-1]
        slots = [(n, h, w) for n, (_, h, w) in zip(config.exit_counts(), config.level_shapes())]
        slots.append((channels - config.exit_counts()[-1], height, width))
        self._slot_shapes = slots
        top_shape = self.latent_shapes[-1]
        self.top_prior: Optional[LearnedPrior] = None
        if config.num_classes is not None:
            self.top_prior = ClassConditionalPrior(top_shape, config.num_classes)
        elif config.learn_top_prior:
            self.top_prior = LearnedPrior(top_shape)

    def _step_mask(self, index: int) -> str:
        mask = self.config.mask
        if mask == "checkerboard_channel":
            return (
                "checkerboard" if index < (self.config.num_steps_per_block + 1) // 2 else "channel"
            )
        return mask

    def _make_step(self, shape: Shape, index: int, coupling_fn: Optional[NetworkFn]) -> Chain:
        config = self.config
        channels, height, width = shape
        mask = self._step_mask(index)
        transformed = channels if mask == "checkerboard" else channels // 2
        condition_shape = (
            shape if mask == "checkerboard" else (channels - transformed, height, width)
        )
        if coupling_fn is None:
            kind = config.coupling or "affine"
            network: nn.Module = glow_network(
                condition_shape[0],
                network_channels(kind, transformed),
                config.hidden_channels,
                config.coupling_dropout,
                config.coupling_network,
                config.zero_conv_padding,
            )
        else:
            network, kind = build_coupling_network(
                coupling_fn, condition_shape, transformed, config.coupling, "coupling_bijector_fn"
            )
        coupling: Bijector
        if isinstance(network, Bijector):
            coupling = network
        elif mask == "checkerboard":
            coupling = CheckerboardCoupling(
                shape,
                network,
                kind,
                config.scale_fn,
                index % 2,
                config.coupling_output,
                config.coupling_shift,
            )
        else:
            coupling = ChannelCoupling(
                channels,
                network,
                kind,
                config.scale_fn,
                transformed,
                config.coupling_output,
                config.coupling_shift,
            )
        layers = [ActNorm(channels)] if config.use_actnorm else []
        layers += [make_permutation(config.permutation, channels), coupling]
        return Chain(*layers, event_shape=shape)

    # ----------------------------------------------------------------------------- running
    def forward_levels(self, x: Tensor, context: Optional[Tensor] = None) -> LevelEncoding:
        """Images ``(B, C, H, W)`` -> per-level latents (finest first) and the log-det ``(B,)``."""
        check_event_shape(x, self.event_shape, "Glow.forward")
        if self.config.validate_args:
            check_batch(x, self.event_shape, "Glow.forward", dtype=self._dtype())
        level_logdets: list[Tensor] = []
        slots: list[Tensor] = []
        h = x
        for level in self.levels:
            h, _ = level.squeeze(h)
            h, logdet = run_steps(level.steps, h, context, self.config.memory_mode)
            h, latent, exit_logdet = level.exit(h, context)
            level_logdets.append(logdet + exit_logdet)
            slots.append(latent)
        slots.append(h)
        last = len(self.levels) - 1
        kept = [(z, min(i, last)) for i, z in enumerate(slots) if z.shape[1]]
        latents, latent_levels = [z for z, _ in kept], [i for _, i in kept]
        raw_top = None
        if self.top_prior is not None:
            raw_top = latents[-1]
            latents[-1], logdet = self.top_prior(raw_top, context)
            level_logdets[-1] = level_logdets[-1] + logdet
        total = level_logdets[0]
        for logdet in level_logdets[1:]:
            total = total + logdet
        return LevelEncoding(latents, total, level_logdets, latent_levels, raw_top)

    def inverse_levels(
        self, latents: Sequence[Tensor], context: Optional[Tensor] = None
    ) -> tuple[Tensor, Tensor]:
        """Per-level latents (as from :meth:`forward_levels`) -> ``(images, log-det)``, exact."""
        latents = list(latents)
        if len(latents) != len(self.latent_shapes):
            raise ConfigError(
                f"Glow.inverse: expected {len(self.latent_shapes)} latents of shapes "
                f"{self.latent_shapes}, got {len(latents)}"
            )
        for index, (z, shape) in enumerate(zip(latents, self.latent_shapes)):
            check_event_shape(z, shape, "Glow.inverse", f"latent {index}")
            if self.config.validate_args:
                check_batch(z, shape, "Glow.inverse", f"latent {index}", dtype=self._dtype())
        total = zero_logdet(latents[0])
        if self.top_prior is not None:
            latents[-1], logdet = self.top_prior.inverse(latents[-1], context)
            total = total + logdet
        given = iter(latents)
        reference = latents[0]
        slots = [
            next(given) if shape[0] else reference.new_empty(reference.shape[0], *shape)
            for shape in self._slot_shapes
        ]
        h = slots.pop()
        for level in reversed(self.levels):
            h, logdet = level.exit.inverse(h, slots.pop(), context)
            total = total + logdet
            for step in reversed(level.steps):
                h, logdet = step.inverse(h, context)
                total = total + logdet
            h, _ = level.squeeze.inverse(h)
        return h, total

    def _dtype(self) -> torch.dtype:
        """The floating dtype of the parameters (what inputs must have)."""
        return next(self.parameters()).dtype

    @property
    def num_classes(self) -> Optional[int]:
        """Classes of the class-conditional top prior (``None``: unconditional)."""
        return self.config.num_classes

    def class_logits(self, encoding: LevelEncoding) -> Tensor:
        """``(B, num_classes)`` logits of the class-conditional prior's classifier head on the
        top latent before the prior (the official code's ``ycond`` head)."""
        if not isinstance(self.top_prior, ClassConditionalPrior) or encoding.raw_top is None:
            raise ConfigError("class logits need a class-conditional Glow (num_classes)")
        return self.top_prior.class_logits(encoding.raw_top)
