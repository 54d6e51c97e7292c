"""Invertible 1x1 convolutions (Kingma & Dhariwal 2018, section 3.2): plain and LU."""

from __future__ import annotations

import contextlib
from typing import Iterator, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .base import Bijector, Shape, check_channels, logdet_dtype, outside_autocast


def random_rotation(num_channels: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """A random orthogonal ``(C, C)`` float64 matrix: the Q of a QR of a Gaussian matrix."""
    gaussian = torch.randn(num_channels, num_channels, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)  # Haar-distributed


def apply_channel_matrix(x: Tensor, matrix: Tensor) -> Tensor:
    """``y[:, i, ...] = sum_j matrix[i, j] x[:, j, ...]`` for ``x`` of shape ``(B, C, ...)``,
    in ``x``'s dtype even under autocast (the 1x1 convolution is the flow's own arithmetic)."""
    matrix = matrix.to(x.dtype)
    with outside_autocast(x):
        if x.dim() == 4:
            return F.conv2d(x, matrix[:, :, None, None])
        return torch.movedim(F.linear(torch.movedim(x, 1, -1), matrix), -1, 1)


_SAME_SIZE_INTEGER = {8: torch.int64, 4: torch.int32, 2: torch.int16, 1: torch.uint8}


def _same_bits(a: Tensor, b: Tensor) -> bool:
    """Whether ``a`` and ``b`` (same shape, dtype and device) hold identical bit patterns.

    Floating point tensors are compared as integers of the same width, so ``-0.0`` differs from
    ``0.0`` and a NaN equals itself: equal bits make :meth:`_matrices` see identical inputs.
    """
    if a.is_floating_point() and a.element_size() in _SAME_SIZE_INTEGER:
        integer = _SAME_SIZE_INTEGER[a.element_size()]
        return torch.equal(a.view(integer), b.view(integer))
    return torch.equal(a, b)


class _CachedMatrices(NamedTuple):
    """``W``, ``W^{-1}``, ``log|det W|`` and copies of the tensors they were computed from."""

    snapshot: tuple[Tensor, ...]
    weight: Tensor
    inverse: Tensor
    logabsdet: Tensor


class _InvertibleChannelMap(Bijector):
    """Shared machinery of the 1x1 convolutions: ``y = W x`` at every position.

    * forward:  ``y = W x``,        ``log|det| = P * log|det W|``  (P positions per channel)
    * inverse:  ``x = W^{-1} y``,   ``log|det| = -P * log|det W|``

    Subclasses give ``W``, ``W^{-1}`` and ``log|det W|`` through :meth:`_matrices`. When no
    gradient can reach the parameters (``torch.no_grad()``, ``torch.inference_mode()`` or
    frozen weights) the three are cached, so repeated encoding and sampling compute no
    determinant or inverse. The cache is exact: it keeps a copy of every parameter and buffer
    of the layer as they were when the matrices were computed, and is used only while each
    tensor still has the same shape, dtype, device and bits (``torch.equal`` on integer
    views: O(C^2) per call, against the O(B C^2 H W) convolution). So any change of the
    weights -- an optimizer step, ``load_state_dict``, a write through ``.data`` or in place
    under ``no_grad``, a reassigned parameter -- recomputes them, and cached results are
    identical to uncached ones. ``train()`` and device or dtype moves (``_apply``) drop the
    cache outright. Inside ``torch.compile`` the matrices are computed from the parameters in
    the graph (the cache's host-side comparison would break it; see :mod:`glowflow.compiled`),
    unless :func:`cached_matrices_in_graphs` has checked the cache eagerly for the call.
    """

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        if num_channels < 1:
            raise ConfigError(f"{type(self).__name__} needs num_channels >= 1, got {num_channels}")
        self.num_channels = num_channels
        self._cache: Optional[_CachedMatrices] = None
        self._graphs_read_cache = False  # set by cached_matrices_in_graphs only

    def _matrices(self, need_inverse: bool) -> tuple[Tensor, Optional[Tensor], Tensor]:
        """``(W, W^{-1} or None, log|det W|)`` computed from the current parameters and buffers.

        ``W^{-1}`` and ``log|det W|`` are float64; ``W`` is float64 or the weight parameter.
        """
        raise NotImplementedError

    def _state(self) -> tuple[Tensor, ...]:
        """Every tensor :meth:`_matrices` may read: the parameters, then the buffers."""
        return (*self.parameters(recurse=False), *self.buffers(recurse=False))

    def _cache_matches(self, state: tuple[Tensor, ...]) -> bool:
        """Whether the cache was computed from tensors equal, bit for bit, to ``state``."""
        if self._cache is None or len(self._cache.snapshot) != len(state):
            return False
        for saved, current in zip(self._cache.snapshot, state):
            if (
                saved.shape != current.shape
                or saved.dtype != current.dtype
                or saved.device != current.device
            ):
                return False
            if not _same_bits(saved, current.detach()):
                return False
        return True

    def _weights(self, need_inverse: bool) -> tuple[Tensor, Optional[Tensor], Tensor]:
        if torch.compiler.is_compiling():
            if self._graphs_read_cache and self._cache is not None:
                return self._cache.weight, self._cache.inverse, self._cache.logabsdet
            return self._matrices(need_inverse)  # the cache is host state: no graph break
        state = self._state()
        if torch.is_grad_enabled() and any(t.requires_grad for t in state):
            return self._matrices(need_inverse)
        if not self._cache_matches(state):
            # Outside inference mode, so the cache also serves later grad-enabled calls
            # (frozen weights) without "inference tensors cannot be saved for backward".
            with torch.inference_mode(False), torch.no_grad():
                snapshot = tuple(t.detach().clone() for t in state)
                weight, inverse, logabsdet = self._matrices(need_inverse=True)
            assert inverse is not None
            self._cache = _CachedMatrices(snapshot, weight.detach(), inverse, logabsdet)
        return self._cache.weight, self._cache.inverse, self._cache.logabsdet

    def _logdet(self, x: Tensor, logabsdet: Tensor) -> Tensor:
        positions = x[0, 0].numel()
        return (logabsdet.to(logdet_dtype(x)) * positions).expand(x.shape[0])

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        weight, _, logabsdet = self._weights(need_inverse=False)
        return apply_channel_matrix(x, weight), self._logdet(x, logabsdet)

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        _, inverse, logabsdet = self._weights(need_inverse=True)
        assert inverse is not None
        return apply_channel_matrix(y, inverse), -self._logdet(y, logabsdet)

    def forward_shape(self, shape: Shape) -> Shape:
        return check_channels(self, shape, self.num_channels)

    inverse_shape = forward_shape

    def train(self, mode: bool = True) -> "_InvertibleChannelMap":
        self._cache = None
        return super().train(mode)

    def _apply(self, fn, recurse: bool = True):  # type: ignore[no-untyped-def]
        self._cache = None  # device or dtype moves make cached tensors stale
        return super()._apply(fn, recurse)

    def extra_repr(self) -> str:
        return f"num_channels={self.num_channels}"


@contextlib.contextmanager
def cached_matrices_in_graphs(module: nn.Module) -> Iterator[None]:
    """Within: compiled graphs read the cached ``W``, ``W^{-1}``, ``log|det W|`` of every 1x1
    convolution in ``module`` instead of computing them (``O(C^3)`` float64 work per layer
    per call, 5% of a compiled ``cifar10-small`` sampling call on a 2-core CPU).

    On entry each cache is checked against the current weights, bit for bit, and recomputed
    if stale (eagerly, under ``no_grad``), so a graph reads exactly the matrices an eager
    call would. Gradients cannot flow through a cache, so entering with gradients enabled is
    a ``RuntimeError``. Dynamo guards on the flag this sets, so graphs compiled outside the
    context (training's) keep computing the matrices from the parameters.
    """
    if torch.is_grad_enabled():
        raise RuntimeError("cached_matrices_in_graphs needs gradients disabled (torch.no_grad())")
    maps = [m for m in module.modules() if isinstance(m, _InvertibleChannelMap)]
    for channel_map in maps:
        channel_map._weights(need_inverse=True)  # checks, and refreshes, the cache
        channel_map._graphs_read_cache = True
    try:
        yield
    finally:
        for channel_map in maps:
            channel_map._graphs_read_cache = False


class InvertibleConv1x1(_InvertibleChannelMap):
    """Invertible 1x1 convolution with a free ``(C, C)`` weight ``W``.

    ``W`` starts as a random rotation (``log|det W| = 0``). ``log|det W|`` comes from
    ``torch.linalg.slogdet`` in float64 (O(C^3), stable for ill-conditioned ``W``).
    """

    def __init__(self, num_channels: int, generator: Optional[torch.Generator] = None) -> None:
        super().__init__(num_channels)
        self.weight = nn.Parameter(random_rotation(num_channels, generator).float())

    def _matrices(self, need_inverse: bool) -> tuple[Tensor, Optional[Tensor], Tensor]:
        weight64 = self.weight.double()
        logabsdet = torch.linalg.slogdet(weight64).logabsdet
        inverse = torch.linalg.inv(weight64) if need_inverse else None
        return self.weight, inverse, logabsdet


class InvertibleConv1x1LU(_InvertibleChannelMap):
    """Invertible 1x1 convolution parameterized by an LU decomposition.

    ``W = P L (U + diag(sign * exp(log_s)))`` with ``P`` a fixed permutation, ``L`` unit lower
    triangular, ``U`` strictly upper triangular, so ``log|det W| = sum(log_s)`` in O(C).
    ``P`` and ``sign`` are persistent buffers; the triangular masks are derived buffers.
    The starting ``W`` is a random rotation, as for :class:`InvertibleConv1x1`.
    """

    def __init__(self, num_channels: int, generator: Optional[torch.Generator] = None) -> None:
        super().__init__(num_channels)
        permutation, lower, upper = torch.linalg.lu(random_rotation(num_channels, generator))
        diagonal = torch.diagonal(upper)
        self.register_buffer("permutation", permutation.float())
        self.register_buffer("sign_s", torch.sign(diagonal).float())
        ones = torch.ones(num_channels, num_channels)
        self.register_buffer("lower_mask", torch.tril(ones, -1), persistent=False)
        self.register_buffer("eye", torch.eye(num_channels), persistent=False)
        self.lower = nn.Parameter(torch.tril(lower, -1).float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_s = nn.Parameter(torch.log(torch.abs(diagonal)).float())

    def _factors(self) -> tuple[Tensor, Tensor]:
        lower = (self.lower * self.lower_mask + self.eye).double()
        upper = (self.upper * self.lower_mask.T).double() + torch.diag(
            (self.sign_s * self.log_s.exp()).double()
        )
        return lower, upper

    def _matrices(self, need_inverse: bool) -> tuple[Tensor, Optional[Tensor], Tensor]:
        lower, upper = self._factors()
        permutation = self.permutation.double()
        weight = permutation @ lower @ upper
        inverse = None
        if need_inverse:
            eye = self.eye.double()
            lower_inv = torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True)
            upper_inv = torch.linalg.solve_triangular(upper, eye, upper=True)
            inverse = upper_inv @ lower_inv @ permutation.T
        return weight, inverse, self.log_s.double().sum()
