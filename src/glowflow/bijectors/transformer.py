"""Transformer pieces shared by the transformer flows (TarFlow, Jet): pre-LN layers with an
optional causal mask and attention temperature, and a preallocated key/value cache.

One layer on tokens ``h`` of shape ``(B, T, W)`` (``W`` the width, ``H = W / d`` heads of
``d`` channels):

* ``h <- h + Attention(LN(h))``, ``Attention(u) = P softmax(Q K^T / (sqrt(d) tau) + M) V`` per
  head, with ``[Q, K, V] = u W_qkv`` (the ``3W`` outputs ordered queries, keys, values, each
  head's ``d`` channels contiguous), ``tau`` the attention temperature and ``M`` the causal
  mask (``0`` where key ``j <= i``, ``-inf`` elsewhere) or nothing;
* ``h <- h + W_2 GELU(W_1 LN(h))`` with ``W_1: W -> e W`` (``e`` the expansion).

The LayerNorms compute their statistics in float32 (float64 for a float64 input) outside
autocast whatever the networks' precision (:mod:`glowflow.precision`), and return the input's
dtype. :class:`KVCache` holds each layer's keys and values ``(B, H, T_max, d)`` in buffers
allocated once, at the first write: incremental decoding writes positions ``[s, s + n)`` and
attends to ``[0, s + n)``; writing the same positions again overwrites them (a Jacobi
iteration revisiting a chunk of tokens).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .base import logdet_dtype, outside_autocast


class LayerNorm32(nn.LayerNorm):
    """``nn.LayerNorm`` over the last dimension with float32 statistics (float64 for float64
    input), outside autocast; the result has the input's dtype."""

    def forward(self, x: Tensor) -> Tensor:
        dtype = logdet_dtype(x)
        weight = None if self.weight is None else self.weight.to(dtype)
        bias = None if self.bias is None else self.bias.to(dtype)
        with outside_autocast(x):
            out = F.layer_norm(x.to(dtype), self.normalized_shape, weight, bias, self.eps)
        return out.to(x.dtype)


class LayerCache:
    """One layer's keys and values ``(B, H, T_max, d)``, allocated at the first write in the
    written tensors' dtype and device."""

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self.keys: Optional[Tensor] = None
        self.values: Optional[Tensor] = None

    def write(self, keys: Tensor, values: Tensor, start: int) -> tuple[Tensor, Tensor]:
        """Store ``keys``/``values`` ``(B, H, n, d)`` at positions ``[start, start + n)``;
        returns all keys and values of positions ``[0, start + n)``."""
        end = start + keys.shape[2]
        if start < 0 or end > self.max_length:
            raise ConfigError(
                f"KVCache: positions [{start}, {end}) outside the cache's {self.max_length}"
            )
        if self.keys is None or self.values is None:
            shape = (*keys.shape[:2], self.max_length, keys.shape[3])
            self.keys = keys.new_empty(shape)
            self.values = values.new_empty(shape)
        self.keys[:, :, start:end] = keys
        self.values[:, :, start:end] = values
        return self.keys[:, :, :end], self.values[:, :, :end]


class KVCache:
    """Preallocated keys and values of every layer of a :class:`TransformerStack` for
    incremental decoding of up to ``max_length`` positions."""

    def __init__(self, num_layers: int, max_length: int) -> None:
        self.layers = [LayerCache(max_length) for _ in range(num_layers)]


class Attention(nn.Module):
    """Pre-LN multi-head self-attention of width ``W = heads * head_dim`` (see the module
    docstring): ``norm``, ``qkv: W -> 3W``, ``proj: W -> W``."""

    def __init__(self, width: int, head_dim: int) -> None:
        super().__init__()
        if head_dim < 1 or width % head_dim:
            raise ConfigError(f"Attention: width {width} is not a multiple of head_dim {head_dim}")
        self.norm = LayerNorm32(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.num_heads = width // head_dim
        self.head_dim = head_dim

    def forward(
        self,
        h: Tensor,
        causal: bool = False,
        temperature: float = 1.0,
        cache: Optional[LayerCache] = None,
        start: int = 0,
    ) -> Tensor:
        """Attention of ``h`` ``(B, n, W)``, the tokens at positions ``[start, start + n)``.

        With ``cache`` the keys and values are stored there and the queries attend to every
        cached position up to their own (all earlier ones, and under ``causal`` none later);
        without, ``start`` must be 0 and the queries attend within ``h``.
        """
        batch, length, width = h.shape
        qkv = self.qkv(self.norm(h)).view(batch, length, 3, self.num_heads, self.head_dim)
        queries, keys, values = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, n, d)
        if cache is not None:
            keys, values = cache.write(keys, values, start)
        elif start:
            raise ConfigError("Attention: a start position needs a cache")
        mask = None
        if causal and length > 1:
            mask = torch.ones(length, keys.shape[2], dtype=torch.bool, device=h.device)
            mask = mask.tril(diagonal=start)  # query i (position start + i) sees keys <= it
        out = F.scaled_dot_product_attention(
            queries, keys, values, attn_mask=mask, scale=self.head_dim**-0.5 / temperature
        )
        return self.proj(out.transpose(1, 2).reshape(batch, length, width))


class MLP(nn.Module):
    """Pre-LN feed-forward block ``W_2 GELU(W_1 LN(h))``: ``norm``, ``up: W -> eW``,
    ``down: eW -> W``."""

    def __init__(self, width: int, expansion: int = 4) -> None:
        super().__init__()
        self.norm = LayerNorm32(width)
        self.up = nn.Linear(width, expansion * width)
        self.down = nn.Linear(expansion * width, width)

    def forward(self, h: Tensor) -> Tensor:
        return self.down(F.gelu(self.up(self.norm(h))))


class TransformerLayer(nn.Module):
    """``h + Attention(h)``, then ``+ MLP``: one pre-LN transformer layer."""

    def __init__(self, width: int, head_dim: int, expansion: int = 4) -> None:
        super().__init__()
        self.attention = Attention(width, head_dim)
        self.mlp = MLP(width, expansion)

    def forward(
        self,
        h: Tensor,
        causal: bool = False,
        temperature: float = 1.0,
        cache: Optional[LayerCache] = None,
        start: int = 0,
    ) -> Tensor:
        h = h + self.attention(h, causal, temperature, cache, start)
        return h + self.mlp(h)


class TransformerStack(nn.Module):
    """``num_layers`` :class:`TransformerLayer` s of width ``width`` applied in order."""

    def __init__(self, width: int, num_layers: int, head_dim: int, expansion: int = 4) -> None:
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"TransformerStack needs at least one layer, got {num_layers}")
        self.layers = nn.ModuleList(
            TransformerLayer(width, head_dim, expansion) for _ in range(num_layers)
        )

    def new_cache(self, max_length: int) -> KVCache:
        """An empty :class:`KVCache` for this stack, for ``max_length`` positions."""
        return KVCache(len(self.layers), max_length)

    def forward(
        self,
        h: Tensor,
        causal: bool = False,
        temperature: float = 1.0,
        cache: Optional[KVCache] = None,
        start: int = 0,
    ) -> Tensor:
        """The stack on tokens ``h`` ``(B, n, W)`` at positions ``[start, start + n)``."""
        for index, layer in enumerate(self.layers):
            layer_cache = None if cache is None else cache.layers[index]
            h = layer(h, causal, temperature, layer_cache, start)
        return h
