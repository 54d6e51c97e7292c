"""The bijector contract shared by every layer of glowflow.

A bijector is an invertible map ``f`` with a tractable log-determinant. Direction follows the
Glow paper and the PyTorch flow libraries (not TensorFlow Probability):

* ``forward(x, context=None) -> (y, logdet)`` is the *normalizing* direction, data -> latent,
  ``y = f(x)`` and ``logdet = log|det df/dx|`` with shape ``(B,)``;
* ``inverse(y, context=None) -> (x, logdet)`` is the *generative* direction, latent -> data,
  ``x = f^{-1}(y)`` and ``logdet = log|det df^{-1}/dy| = -log|det df/dx|`` at ``x = f^{-1}(y)``.

Log-determinants are accumulated in float32 (float64 when the input is float64), whatever
precision the networks run in: a layer casts its network's output to its input's dtype before
using it, and runs its own matmul-like arithmetic :func:`outside_autocast`. ``b.inv`` is the
inverted bijector and ``b.inv.inv is b``.
Event shapes (everything but the batch dimension) are checked when bijectors are chained
through :meth:`Bijector.forward_shape` / :meth:`Bijector.inverse_shape`.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from ..errors import ConfigError

Shape = tuple[int, ...]


def logdet_dtype(x: Tensor) -> torch.dtype:
    """The dtype log-determinants are accumulated in for input ``x``: float64 or float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def zero_logdet(x: Tensor) -> Tensor:
    """A zero log-determinant of shape ``(B,)`` on ``x``'s device, in :func:`logdet_dtype`."""
    return torch.zeros(x.shape[0], dtype=logdet_dtype(x), device=x.device)


def outside_autocast(x: Tensor) -> torch.autocast:
    """A context in which ``torch.autocast`` is off on ``x``'s device: the flow's own
    matmul-like arithmetic (1x1 convolutions, prior tables) runs in ``x``'s dtype even when
    the networks run under autocast (see :mod:`glowflow.precision`)."""
    return torch.autocast(x.device.type, enabled=False)


def sum_except_batch(t: Tensor) -> Tensor:
    """Sum of all but the first dimension, ``(B, ...) -> (B,)``, in :func:`logdet_dtype`."""
    return t.reshape(t.shape[0], -1).to(logdet_dtype(t)).sum(dim=1)


class Rebuilt(NamedTuple):
    """What :meth:`Bijector.rebuild` returns: a layer's input rebuilt from its output, and the
    output recomputed from it with the layer's local autograd graph.

    Attributes:
        x: the rebuilt input, a leaf that requires grad.
        y: the recomputed output, a function of ``x`` and the layer's parameters.
        logdet: the recomputed ``log|det|``, ``(B,)``, likewise.
        links: pairs ``(leaf, value)``: further leaves of the graph that stand for ``value``, a
            function of ``x`` equal to the leaf (a coupling's network input). A gradient that
            reaches ``leaf`` reaches ``x`` through ``value``.
    """

    x: Tensor
    y: Tensor
    logdet: Tensor
    links: tuple[tuple[Tensor, Tensor], ...] = ()


class Bijector(nn.Module):
    """Base class: an invertible map with exact log-determinant, as an ``nn.Module``.

    Subclasses implement :meth:`forward` and :meth:`inverse`. A shape-preserving bijector
    built for one ``event_shape`` gets its shape check from the default
    :meth:`forward_shape` / :meth:`inverse_shape`; shape-changing or otherwise constrained
    subclasses override them, raising ``ValueError`` for an event shape they cannot take.

    Attributes:
        event_shape: the input event shape ``(C, H, W)`` (or ``(D,)``) this bijector was built
            for, or ``None`` when it accepts any shape its :meth:`forward_shape` allows.
        validate_args: whether it checks its inputs (a :class:`~glowflow.Flow` over it then
            checks too).
    """

    event_shape: Optional[Shape] = None
    validate_args: bool = False

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """Data -> latent: returns ``(f(x), log|det df/dx|)``, the log-det of shape ``(B,)``."""
        raise NotImplementedError

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """Latent -> data: returns ``(f^{-1}(y), log|det df^{-1}/dy|)`` of shape ``(B,)``."""
        raise NotImplementedError

    def forward_shape(self, shape: Shape) -> Shape:
        """Event shape of ``forward``'s output for an input of event shape ``shape``.

        Default: shape preserving, and only ``event_shape`` is accepted when it is declared.
        """
        if self.event_shape is not None and tuple(shape) != tuple(self.event_shape):
            raise ConfigError(
                f"{type(self).__name__} was built for event shape {tuple(self.event_shape)}, "
                f"got {tuple(shape)}"
            )
        return tuple(shape)

    def inverse_shape(self, shape: Shape) -> Shape:
        """Event shape of ``inverse``'s output for an input of event shape ``shape``."""
        return Bijector.forward_shape(self, shape)

    def rebuild(self, y: Tensor, context: Optional[Tensor] = None) -> Rebuilt:
        """The hook of the invertible memory mode (:mod:`glowflow.memory`): rebuild the input
        ``x = f^{-1}(y)`` from the output and recompute ``(f(x), log|det|)`` with a local graph.

        Default: invert without a graph, then run ``forward`` again from a leaf ``x``. Layers
        that can share work between the two override it (a coupling runs its network once).
        """
        with torch.no_grad():
            x, _ = self.inverse(y, context)
        x = x.detach().requires_grad_()
        with torch.enable_grad():
            output, logdet = self(x, context)
        return Rebuilt(x, output, logdet)

    @property
    def inv(self) -> "Bijector":
        """The inverse bijector: its ``forward`` is this one's ``inverse``. ``b.inv.inv is b``."""
        cached = self.__dict__.get("_inverse_view")
        if cached is None:
            cached = Inverse(self)
            # Stored outside nn.Module's registry so the module tree has no cycle.
            object.__setattr__(self, "_inverse_view", cached)
        return cached


class Inverse(Bijector):
    """The inverse of a bijector: ``forward`` and ``inverse`` (and their shapes) swapped."""

    def __init__(self, base: Bijector) -> None:
        super().__init__()
        self.base = base

    @property
    def event_shape(self) -> Optional[Shape]:  # type: ignore[override]
        """The base's output shape, when the base declares its input shape."""
        if self.base.event_shape is None:
            return None
        return self.base.forward_shape(self.base.event_shape)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return self.base.inverse(x, context)

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return self.base.forward(y, context)

    def forward_shape(self, shape: Shape) -> Shape:
        return self.base.inverse_shape(shape)

    def inverse_shape(self, shape: Shape) -> Shape:
        return self.base.forward_shape(shape)

    @property
    def inv(self) -> Bijector:
        return self.base


def check_channels(layer: nn.Module, shape: Shape, num_channels: int) -> Shape:
    """Raise ``ValueError`` naming ``layer`` unless ``shape`` has ``num_channels`` channels."""
    shape = tuple(shape)
    if len(shape) < 1 or shape[0] != num_channels:
        raise ConfigError(
            f"{type(layer).__name__} expects {num_channels} channels (event shape "
            f"({num_channels}, ...)), got event shape {shape}"
        )
    return shape
