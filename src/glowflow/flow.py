"""A flow model: a standard normal base distribution pushed through a bijector."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ContextManager, Optional, Sequence

import torch
from torch import Tensor, nn

from .bijectors.actnorm import ActNorm
from .bijectors.base import Bijector, Shape
from .bijectors.multiscale import LevelEncoding, MultiScaleBijector
from .compiled import compiled_call
from .errors import ConfigError
from .metrics import bits_per_dim
from .precision import network_precision, sampling_precision
from .validation import check_batch

if TYPE_CHECKING:
    from .config_base import FlowConfig

_LOG_2PI = math.log(2.0 * math.pi)


def standard_normal_log_prob(latents: Sequence[Tensor]) -> Tensor:
    """``sum_i log N(z_i; 0, I)`` over all latents, ``(B,)`` in float32/float64."""
    total = None
    for z in latents:
        z = z.reshape(z.shape[0], -1)
        z = z.double() if z.dtype == torch.float64 else z.float()
        term = -0.5 * (z.pow(2).sum(dim=1) + z.shape[1] * _LOG_2PI)
        total = term if total is None else total + term
    assert total is not None
    return total


def log_prob_of(encoding: LevelEncoding) -> Tensor:
    """``log p(x) = sum_i log N(z_i; 0, I) + log|det df/dx|`` from ``x``'s encoding, ``(B,)``."""
    return standard_normal_log_prob(encoding.latents) + encoding.logdet


class Flow(nn.Module):
    """``p(x) = N(f(x); 0, I) |det df/dx|`` for a bijector ``f`` (data -> latent).

    With ``f`` a :class:`~glowflow.bijectors.multiscale.MultiScaleBijector` (a
    :class:`~glowflow.Glow`) the latent is multi-scale: :meth:`encode` returns the list of
    per-level latents and :meth:`decode` inverts it exactly (no resampling); for any other
    bijector the list has one element, ``f(x)``. A bijector that hides a multi-scale one inside
    (a :class:`~glowflow.Chain` holding a Glow, say) would flatten its levels, so it is a
    ``ValueError``. Temperature ``T`` samples the base ``N(0, T^2 I)``. ``forward`` returns
    ``log p(x | y)``, so DDP and ``torch.compile`` wrap the model directly.

    Args:
        bijector: the map ``f``; its ``event_shape`` is the data shape unless given.
        event_shape: data shape ``(C, H, W)`` (or ``(D,)``).
        validate_args: check shapes, dtypes and finiteness of inputs at each public method
            (also on when the bijector's ``validate_args`` is).

    What the upper floors (trainer, model folders, OOD, benchmark) ask of a flow is declared
    here, never read from the bijector's insides: :attr:`config` (the family config it was
    built from, ``None`` for a hand-made flow), :attr:`num_classes` (``None``: unconditional)
    and :meth:`class_logits`.
    """

    config: Optional["FlowConfig"]
    """The family config this flow was built from (set by :func:`glowflow.families.build`; a
    bijector's ``complete_config`` otherwise, as a :class:`~glowflow.Glow` declares it)."""

    def __init__(
        self,
        bijector: Bijector,
        event_shape: Optional[Sequence[int]] = None,
        validate_args: bool = False,
    ) -> None:
        super().__init__()
        shape = event_shape if event_shape is not None else bijector.event_shape
        if shape is None:
            raise ConfigError(
                f"Flow needs the data's shape: a {type(bijector).__name__} does not declare "
                f"one, so pass it, e.g. gf.Flow(bijector, event_shape=(1, 8, 8)) for (C, H, W) "
                f"images"
            )
        self.bijector = bijector
        self.config = getattr(bijector, "complete_config", None)
        self.event_shape: Shape = tuple(int(s) for s in shape)
        self.validate_args = validate_args or bijector.validate_args
        if isinstance(bijector, MultiScaleBijector):
            self.latent_shapes: list[Shape] = list(bijector.latent_shapes)
        else:
            hidden = next(
                (m for m in bijector.modules() if isinstance(m, MultiScaleBijector)), None
            )
            if hidden is not None:
                raise ConfigError(
                    f"Flow: the {type(bijector).__name__} holds a multi-scale "
                    f"{type(hidden).__name__}, whose per-level latents it would flatten; build "
                    f"the Flow on the multi-scale bijector itself (put other layers inside it, "
                    f"or preprocess the data before the flow)"
                )
            self.latent_shapes = [bijector.forward_shape(self.event_shape)]

    @property
    def multiscale(self) -> Optional[MultiScaleBijector]:
        """The bijector when it is multi-scale (per-level latents), else ``None``."""
        return self.bijector if isinstance(self.bijector, MultiScaleBijector) else None

    @property
    def num_classes(self) -> Optional[int]:
        """Classes of a class-conditional flow (labels ``y`` in ``0..num_classes-1``), else
        ``None``."""
        return getattr(self.bijector, "num_classes", None)

    def class_logits(self, encoding: LevelEncoding) -> Tensor:
        """``(B, num_classes)`` class logits of a class-conditional flow from the encoding of
        :meth:`forward_levels` (the classifier head on the top latent)."""
        head = getattr(self.bijector, "class_logits", None)
        if head is None:
            raise ConfigError(f"a Flow over a {type(self.bijector).__name__} has no class head")
        return head(encoding)

    @property
    def num_dims(self) -> int:
        """Dimensions ``D`` of one example."""
        return math.prod(self.event_shape)

    def _check(self, x: Tensor, where: str) -> None:
        if self.validate_args:
            check_batch(x, self.event_shape, where)

    def forward_levels(
        self, x: Tensor, y: Optional[Tensor] = None, where: str = "Flow.forward_levels"
    ) -> LevelEncoding:
        """The per-level latents of ``x`` and ``log|det df/dx|`` ``(B,)`` (one latent for a
        bijector that is not multi-scale); ``where`` names the caller in errors."""
        self._check(x, where)
        if self.multiscale is not None:
            return self.multiscale.forward_levels(x, y)
        z, logdet = self.bijector(x, y)
        return LevelEncoding([z], logdet)

    def forward(self, x: Tensor, y: Optional[Tensor] = None) -> Tensor:
        """Training entry: ``log p(x | y)`` in nats per example, ``(B,)``."""
        return log_prob_of(self.forward_levels(x, y, "Flow.forward"))

    def log_prob(self, x: Tensor, y: Optional[Tensor] = None) -> Tensor:
        """``log p(x | y)`` in nats per example, shape ``(B,)``."""
        return self.forward(x, y)

    def bits_per_dim(self, x: Tensor, n_bins: int, y: Optional[Tensor] = None) -> Tensor:
        """Bits per dimension of ``x`` (see :func:`glowflow.metrics.bits_per_dim`), ``(B,)``."""
        return bits_per_dim(self.log_prob(x, y), self.num_dims, n_bins)

    def encode(self, x: Tensor, y: Optional[Tensor] = None) -> list[Tensor]:
        """Exact latents of ``x``: a list of per-level tensors ``(B, C_i, H_i, W_i)``."""
        return self.forward_levels(x, y, "Flow.encode").latents

    def decode(self, latents: Sequence[Tensor], y: Optional[Tensor] = None) -> Tensor:
        """Exact inverse of :meth:`encode`: latents -> data ``(B, *event_shape)``."""
        if self.multiscale is not None:
            return self.multiscale.inverse_levels(latents, y)[0]
        if len(latents) != 1:
            raise ConfigError(f"Flow.decode: expected a single latent, got {len(latents)}")
        return self.bijector.inverse(latents[0], y)[0]

    def _reference(self) -> Tensor:
        reference = next(self.parameters(), None)
        if reference is None:
            reference = next(self.buffers(), torch.zeros(()))
        return reference

    def sampling_precision(self, precision: Optional[str]) -> ContextManager[object]:
        """The context sampling runs in: autocast to ``precision`` (``None`` or ``"auto"``: the
        fastest the flow's device runs well, bf16 where it has bf16 matrix units, for a float32
        flow; see :func:`glowflow.precision.sampling_precision`), nothing for fp32."""
        reference = self._reference()
        name = sampling_precision(precision, reference.device, reference.dtype)
        return network_precision(name, reference.device)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        y: Optional[Tensor] = None,
        generator: Optional[torch.Generator] = None,
        *,
        precision: Optional[str] = None,
        compile: bool = False,
    ) -> Tensor:
        """``n`` samples ``(n, *event_shape)`` from ``N(0, T^2 I)`` pushed through ``f^{-1}``.

        ``temperature = 0`` gives the mode of the base (all latents zero). The networks run
        in ``precision`` (``None``: bf16 on devices with bf16 matrix units, else fp32; the
        flow's own arithmetic stays fp32 either way, see :mod:`glowflow.precision`); pass
        ``"fp32"`` for samples that equal ``decode`` of the same latents. ``compile`` decodes
        through ``torch.compile`` (:mod:`glowflow.compiled`: worth it for many batches).
        """
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        reference = self._reference()
        latents = [
            torch.randn(
                n, *shape, generator=generator, device=reference.device, dtype=reference.dtype
            ).mul_(temperature)
            for shape in self.latent_shapes
        ]
        with self.sampling_precision(precision):
            if compile:
                return compiled_call(self, "decode", latents, y)
            return self.decode(latents, y)

    @torch.no_grad()
    def initialize(self, x: Tensor, y: Optional[Tensor] = None) -> None:
        """Data-dependent initialization of every ActNorm from the batch ``x``.

        Re-initializes ActNorms that were already initialized; the layers see the batch as
        transformed by the (already initialized) layers before them.
        """
        for module in self.modules():
            if isinstance(module, ActNorm):
                module.reset_initialization()
        self.forward_levels(x, y, "Flow.initialize")
