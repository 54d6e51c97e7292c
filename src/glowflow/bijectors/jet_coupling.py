"""Jet's coupling (Kolesnikov et al. 2024, arXiv:2412.15129): an affine coupling on patch
tokens whose conditioner is a ViT, split along channels or along tokens after a fixed
permutation.

On tokens ``x`` ``(B, T, D)``: permute the entries of every token (``kind="channels"``, a fixed
random permutation of ``D``) or the tokens (``kind="spatial"``, a fixed pattern over the
``(H/p, W/p)`` grid); split into halves ``x_1`` (conditioning) and ``x_2`` (transformed);

* ``[b, h] = ViT(x_1)``,  ``s = 2 sigmoid(h)``  (in ``(0, 2)``, 1 at ``h = 0``);
* forward: ``y_2 = (x_2 + b) * s``,  ``log|det| = sum log s``;
* inverse: ``x_2 = y_2 / s - b``,  ``log|det| = -sum log s``;

then merge ``[x_1, y_2]`` and undo the permutation. The ViT is a linear embedding, a learned
positional embedding, non-causal pre-LN transformer layers, a final LayerNorm and a
zero-initialized projection (so the coupling starts as the identity). For a spatial coupling
the ViT reads the ``T/2`` conditioning tokens and its output token ``j`` gives the parameters
of transformed token ``j`` (Jet reshapes both halves to ``T`` tokens of ``D/2`` entries instead,
to share one network shape with its channel couplings; the map is the same kind). The network
reads ``x_1``, which both directions see unchanged, so its output is bit-identical in both and
the inverse is exact to float32 rounding in any network precision.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .base import Bijector, sum_except_batch
from .transformer import LayerNorm32, TransformerStack

KINDS = ("channels", "spatial")
"""What a Jet coupling splits: the entries of every token, or the tokens."""

SPATIAL_PATTERNS = (
    "checkerboard",
    "checkerboard-inv",
    "vstripes",
    "vstripes-inv",
    "hstripes",
    "hstripes-inv",
)
"""Jet's token splits over the patch grid ``(i, j)``: conditioning tokens where ``(i + j)``,
``j`` or ``i`` is even; ``-inv`` swaps the halves."""


def spatial_permutation(grid: tuple[int, int], pattern: str) -> Tensor:
    """The token order ``(T,)`` of a spatial split: the conditioning tokens (raster order) then
    the transformed ones, for a ``grid = (rows, cols)`` of patches."""
    if pattern not in SPATIAL_PATTERNS:
        raise ConfigError(f"spatial pattern must be one of {SPATIAL_PATTERNS}, got {pattern!r}")
    rows, cols = grid
    i = torch.arange(rows).view(-1, 1).expand(rows, cols)
    j = torch.arange(cols).view(1, -1).expand(rows, cols)
    base = pattern.removesuffix("-inv")
    value = {"checkerboard": i + j, "vstripes": j, "hstripes": i}[base].reshape(-1)
    first = (value % 2 == 0) != pattern.endswith("-inv")
    if int(first.sum()) * 2 != rows * cols:
        raise ConfigError(
            f"spatial pattern {pattern!r} does not halve a {rows}x{cols} grid of patches"
        )
    tokens = torch.arange(rows * cols)
    return torch.cat([tokens[first], tokens[~first]])


class ViTConditioner(nn.Module):
    """``(B, n, d_in) -> (b, h)``, each ``(B, n, d_out)``: ``init_proj``, ``posemb`` ``(n,
    width)`` (std ``1/sqrt(width)``), non-causal ``transformer``, ``norm``, zero-initialized
    ``final_proj`` to ``2 d_out`` (``b`` first). The output is cast to the input's dtype."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        num_tokens: int,
        width: int,
        depth: int,
        head_dim: int,
        expansion: int = 4,
    ) -> None:
        super().__init__()
        self.init_proj = nn.Linear(in_dim, width)
        self.posemb = nn.Parameter(torch.randn(num_tokens, width) / math.sqrt(width))
        self.transformer = TransformerStack(width, depth, head_dim, expansion)
        self.norm = LayerNorm32(width)
        self.final_proj = nn.Linear(width, 2 * out_dim)
        nn.init.zeros_(self.final_proj.weight)
        nn.init.zeros_(self.final_proj.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.transformer(self.init_proj(x) + self.posemb)
        bias, raw_scale = self.final_proj(self.norm(h)).to(x.dtype).chunk(2, dim=-1)
        return bias, raw_scale


class JetCoupling(Bijector):
    """One Jet coupling on tokens ``(B, T, D)`` (equations in the module docstring).

    Args:
        num_tokens: ``T``.
        token_dim: ``D``.
        kind: ``"channels"`` or ``"spatial"``.
        permutation: ``(D,)`` (channels) or ``(T,)`` (spatial) order; the first half of the
            permuted axis conditions, the rest is transformed. Stored as buffers ``perm`` and
            ``inverse_perm``, so it survives ``state_dict``.
        width: the ViT's token width.
        depth: its blocks.
        head_dim: channels per attention head.
        expansion: its MLP's expansion factor.
    """

    def __init__(
        self,
        num_tokens: int,
        token_dim: int,
        kind: str,
        permutation: Tensor,
        width: int,
        depth: int = 1,
        head_dim: int = 64,
        expansion: int = 4,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ConfigError(f"Jet coupling kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.axis = 2 if kind == "channels" else 1
        size = token_dim if kind == "channels" else num_tokens
        perm = torch.as_tensor(permutation, dtype=torch.long)
        if perm.shape != (size,) or not torch.equal(perm.sort().values, torch.arange(size)):
            raise ConfigError(f"JetCoupling({kind}) needs a permutation of 0..{size - 1}")
        self.cut = size // 2
        if self.cut < 1 or (kind == "spatial" and size % 2):
            raise ConfigError(f"JetCoupling({kind}) cannot halve {size} {kind}")
        self.event_shape = (num_tokens, token_dim)
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))
        if kind == "channels":
            conditioner_shape = (self.cut, token_dim - self.cut, num_tokens)
        else:
            conditioner_shape = (token_dim, token_dim, self.cut)
        self.conditioner = ViTConditioner(
            *conditioner_shape, width=width, depth=depth, head_dim=head_dim, expansion=expansion
        )

    def _couple(self, x: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        permuted = x.index_select(self.axis, self.perm)
        size = permuted.shape[self.axis]
        condition, transformed = permuted.split([self.cut, size - self.cut], dim=self.axis)
        bias, raw_scale = self.conditioner(condition)
        log_scale = F.logsigmoid(raw_scale) + math.log(2.0)
        if inverse:
            out = transformed * torch.exp(-log_scale) - bias
        else:
            out = (transformed + bias) * torch.exp(log_scale)
        merged = torch.cat([condition, out], dim=self.axis).index_select(
            self.axis, self.inverse_perm
        )
        logdet = sum_except_batch(log_scale)
        return merged, -logdet if inverse else logdet

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        self.forward_shape(tuple(x.shape[1:]))
        return self._couple(x, inverse=False)

    def inverse(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        self.forward_shape(tuple(y.shape[1:]))
        return self._couple(y, inverse=True)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, event_shape={self.event_shape}"
