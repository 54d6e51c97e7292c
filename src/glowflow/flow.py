"""A flow model: a standard normal base distribution pushed through a bijector."""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import torch
from torch import Tensor, nn

from .bijectors.actnorm import ActNorm
from .bijectors.base import Bijector, Shape
from .metrics import bits_per_dim
from .validation import check_batch

_LOG_2PI = math.log(2.0 * math.pi)


class FlowOutput(NamedTuple):
    """What :meth:`Flow.forward` returns for training.

    Attributes:
        log_prob: ``log p(x)`` (given ``y`` if conditional), nats per example, ``(B,)``.
        class_logits: ``(B, num_classes)`` from the top latent for a class-conditional Glow
            with a classifier head, else ``None``.
    """

    log_prob: Tensor
    class_logits: Optional[Tensor]


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


class Flow(nn.Module):
    """``p(x) = N(f(x); 0, I) |det df/dx|`` for a bijector ``f`` (data -> latent).

    With ``f`` a :class:`~glowflow.Glow` the latent is multi-scale: :meth:`encode` returns the
    list of per-level latents and :meth:`decode` inverts it exactly (no resampling); for any
    other bijector the list has one element, ``f(x)``. Temperature ``T`` samples the base
    ``N(0, T^2 I)``. ``forward`` returns :class:`FlowOutput`, so DDP and ``torch.compile``
    wrap the model directly.

    Args:
        bijector: the map ``f``; its ``event_shape`` is the data shape unless given.
        event_shape: data shape ``(C, H, W)`` (or ``(D,)``).
        validate_args: check shapes, dtypes and finiteness of inputs at each public method.
    """

    def __init__(
        self,
        bijector: Bijector,
        event_shape: Optional[Sequence[int]] = None,
        validate_args: bool = False,
    ) -> None:
        super().__init__()
        shape = event_shape if event_shape is not None else bijector.event_shape
        if shape is None:
            raise ValueError("Flow needs an event_shape: the bijector does not declare one")
        self.bijector = bijector
        self.event_shape: Shape = tuple(int(s) for s in shape)
        self.validate_args = validate_args or bool(getattr(bijector, "validate_args", False))
        levels = getattr(bijector, "latent_shapes", None)
        self.latent_shapes: list[Shape] = (
            list(levels) if levels is not None else [bijector.forward_shape(self.event_shape)]
        )

    @property
    def num_dims(self) -> int:
        """Dimensions ``D`` of one example."""
        return math.prod(self.event_shape)

    def _check(self, x: Tensor, where: str) -> None:
        if self.validate_args:
            check_batch(x, self.event_shape, where)

    def _encode_with_logdet(
        self, x: Tensor, y: Optional[Tensor]
    ) -> tuple[list[Tensor], Tensor, Optional[Tensor]]:
        forward_levels = getattr(self.bijector, "forward_levels", None)
        if forward_levels is None:
            z, logdet = self.bijector(x, y)
            return [z], logdet, None
        encoding = forward_levels(x, y)
        logits = self.bijector.class_logits(encoding.top)
        return encoding.latents, encoding.logdet, logits

    def forward(self, x: Tensor, y: Optional[Tensor] = None) -> FlowOutput:
        """Training entry: ``log p(x | y)`` per example and the optional class logits."""
        self._check(x, "Flow.forward")
        latents, logdet, logits = self._encode_with_logdet(x, y)
        return FlowOutput(standard_normal_log_prob(latents) + logdet, logits)

    def log_prob(self, x: Tensor, y: Optional[Tensor] = None) -> Tensor:
        """``log p(x | y)`` in nats per example, shape ``(B,)``."""
        return self.forward(x, y).log_prob

    def bits_per_dim(self, x: Tensor, n_bins: int, y: Optional[Tensor] = None) -> Tensor:
        """Bits per dimension of ``x`` (see :func:`glowflow.metrics.bits_per_dim`), ``(B,)``."""
        return bits_per_dim(self.log_prob(x, y), self.num_dims, n_bins)

    def encode(self, x: Tensor, y: Optional[Tensor] = None) -> list[Tensor]:
        """Exact latents of ``x``: a list of per-level tensors ``(B, C_i, H_i, W_i)``."""
        self._check(x, "Flow.encode")
        return self._encode_with_logdet(x, y)[0]

    def decode(self, latents: Sequence[Tensor], y: Optional[Tensor] = None) -> Tensor:
        """Exact inverse of :meth:`encode`: latents -> data ``(B, *event_shape)``."""
        inverse_levels = getattr(self.bijector, "inverse_levels", None)
        if inverse_levels is not None:
            return inverse_levels(latents, y)[0]
        if len(latents) != 1:
            raise ValueError(f"Flow.decode: expected a single latent, got {len(latents)}")
        return self.bijector.inverse(latents[0], y)[0]

    def _reference(self) -> Tensor:
        reference = next(self.parameters(), None)
        if reference is None:
            reference = next(self.buffers(), torch.zeros(()))
        return reference

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        y: Optional[Tensor] = None,
        generator: Optional[torch.Generator] = None,
    ) -> Tensor:
        """``n`` samples ``(n, *event_shape)`` from ``N(0, T^2 I)`` pushed through ``f^{-1}``.

        ``temperature = 0`` gives the mode of the base (all latents zero).
        """
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        reference = self._reference()
        latents = [
            torch.randn(
                n, *shape, generator=generator, device=reference.device, dtype=reference.dtype
            ).mul_(temperature)
            for shape in self.latent_shapes
        ]
        return self.decode(latents, y)

    @torch.no_grad()
    def initialize(self, x: Tensor, y: Optional[Tensor] = None) -> None:
        """Data-dependent initialization of every ActNorm from the batch ``x``.

        Re-initializes ActNorms that were already initialized; the layers see the batch as
        transformed by the (already initialized) layers before them.
        """
        self._check(x, "Flow.initialize")
        for module in self.modules():
            if isinstance(module, ActNorm):
                module.reset_initialization()
        self._encode_with_logdet(x, y)
