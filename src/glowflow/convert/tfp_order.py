"""Conversion between glowflow's per-level latents and the rank-1 latent of TFP's ``tfb.Glow``.

TFP's layout (tensorflow/probability, ``tensorflow_probability/python/bijectors/glow.py``, read
at commit ``c847a4160de3``; line numbers refer to it):

* TFP's ``Glow.forward`` maps the latent ``z`` (size ``H*W*C``) to the image. Its first
  bijector reshapes ``z`` into ONE tensor at the coarsest resolution,
  ``Reshape(event_shape_out=[h // 2**n, w // 2**n, c * 4**n], event_shape_in=[h * w * c])``
  (lines 395-399): row-major over ``(H_c, W_c, C_total)`` (NHWC), so the channel index varies
  fastest. ``z`` is *not* a concatenation of per-level blocks; every coarse pixel carries the
  latents of every level.
* Exited channels never leave TFP's tensor: each exit (``ExitBijector``, lines 496-559) is a
  ``Blockwise([RealNVP(num_masked=nleave), Identity()], [nleave + ngrab, npass])`` on the
  channel axis, and each block is ``Blockwise([glow_block, Identity()], [nleave + ngrab,
  npass])`` (lines 428-432), so a level's channels are ``[nleave | ngrab | npass]``: the
  continuing channels FIRST, the exiting ones (``ngrab``, the LAST channels of the block's
  tensor, as in glowflow) next, then the ``npass`` channels that exited at finer levels.
* ``Expand`` (lines 819-840; its inverse is the squeeze) is applied to the WHOLE tensor,
  ``npass`` channels included (lines 435-440), so channels that exited at a finer level are
  squeezed again at every later level. Its channel order: input channel ``c`` at tile offset
  ``(i, j)`` <-> channel ``c * 4 + i * 2 + j`` (``Reshape [h, w, c] -> [h, w, c/4, 2, 2]``,
  ``Transpose(perm=[0, 3, 1, 4, 2])``, ``Reshape -> [2h, 2w, c/4]``), exactly glowflow's
  :class:`~glowflow.bijectors.squeeze.Squeeze`. A squeeze maps a channel range ``[a, b)`` to
  ``[4a, 4b)``, so the exited groups stay contiguous and in order.

Hence, for glowflow's latents ``[z_0, ..., z_{L-1}, top]`` (finest first, NCHW, from
``Glow.forward_levels``), TFP's rank-1 latent is::

    coarse = cat([top, z_{L-1}, S(z_{L-2}), S(S(z_{L-3})), ..., S^{L-1}(z_0)], channels)
    z_tfp  = coarse.permute(0, 2, 3, 1).reshape(B, -1)        # (B, H_c, W_c, C_total) row-major

where ``S`` is the (shared) 2x2 squeeze and each latent is squeezed until it reaches the
coarsest resolution: the coarsest level comes first in the channel axis and, within each
pixel, the channels of all levels follow one another. This is a pure re-indexing (a
permutation) of the entries of glowflow's flat latent. (The example at the end of TFP's class
docstring, lines 245-248, splits ``z`` into contiguous per-scale pieces; per the code above the
pieces are interleaved per coarse pixel instead, so that split does not give the scales.)

Only the layout is converted here. The latents' VALUES agree only when the two flows compute
the same function, which is a matter of parameters and wiring, not of indexing: TFP's couplings
use ``Scale(sigmoid(h[..., :c] + 2))`` then ``Shift(h[..., c:])`` (scale first in the network
output, lines 683-686) and its exits ``Scale(exp(h[..., :c] + 2))`` (``scale_fn=tf.exp``, lines
546-549, 587-590); within a TFP block the steps run, image to latent, in the reverse of their
construction order (lines 622-655), and TFP's level ``i`` of ``blockwise_splits`` is
glowflow's level ``L - 1 - i`` (lines 371-372, 403-442, 477-489).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import ConfigError

LatentShape = tuple[int, int, int]
"""A per-level latent's ``(C_i, H_i, W_i)``, channels first."""


def _squeeze(x: Tensor) -> Tensor:
    """``(B, C, H, W) -> (B, 4C, H/2, W/2)``: channel ``c`` at tile offset ``(i, j)`` goes to
    channel ``c*4 + i*2 + j`` (TFP's inverse ``Expand``; glowflow's ``Squeeze``)."""
    batch, channels, height, width = x.shape
    y = x.reshape(batch, channels, height // 2, 2, width // 2, 2)
    return y.permute(0, 1, 3, 5, 2, 4).reshape(batch, channels * 4, height // 2, width // 2)


def _unsqueeze(y: Tensor) -> Tensor:
    """The exact inverse of :func:`_squeeze`: ``(B, 4C, H, W) -> (B, C, 2H, 2W)``."""
    batch, channels, height, width = y.shape
    x = y.reshape(batch, channels // 4, 2, 2, height, width)
    return x.permute(0, 1, 4, 2, 5, 3).reshape(batch, channels // 4, height * 2, width * 2)


def _squeeze_counts(shapes: Sequence[LatentShape]) -> list[int]:
    """For each ``(C, H, W)``, how many 2x2 squeezes bring it to the last (coarsest) shape's
    ``(H, W)``; a ``ValueError`` when one cannot."""
    if not shapes:
        raise ConfigError("TFP latent order: need at least one latent shape")
    _, coarse_h, coarse_w = shapes[-1]
    counts = []
    for index, shape in enumerate(shapes):
        if len(shape) != 3 or any(int(d) < 1 for d in shape):
            raise ConfigError(
                f"TFP latent order: latent {index} needs a (C, H, W) shape of "
                f"positive sizes, got {tuple(shape)}"
            )
        _, height, width = shape
        count = 0
        while height > coarse_h and height % 2 == 0 and width % 2 == 0:
            height, width, count = height // 2, width // 2, count + 1
        if (height, width) != (coarse_h, coarse_w):
            raise ConfigError(
                f"TFP latent order: latent {index} of shape {tuple(shape)} is not a 2^k "
                f"squeeze away from the coarsest (last) latent's H, W = {coarse_h}, {coarse_w}"
            )
        counts.append(count)
    return counts


def to_tfp_latent(latents: Sequence[Tensor]) -> Tensor:
    """glowflow's per-level latents -> TFP ``tfb.Glow``'s rank-1 latent order.

    Args:
        latents: as from ``Glow.forward_levels``: finest level first, the top (coarsest)
            latent last, each ``(B, C_i, H_i, W_i)`` with ``H_i, W_i`` equal to the last
            latent's ``H, W`` times ``2^k`` (one ``k`` per latent).

    Returns:
        ``(B, D)`` with ``D = sum(C_i * H_i * W_i)``: each latent squeezed to the coarsest
        resolution, concatenated along channels coarsest first, then flattened
        ``(H_c, W_c, C_total)`` row-major -- the ``z`` that TFP's ``Glow.forward`` reshapes
        (see the module docstring). A permutation of ``Glow.flatten_latents``' entries.
    """
    latents = list(latents)
    for index, z in enumerate(latents):
        if z.dim() != 4:
            raise ConfigError(
                f"to_tfp_latent: latent {index} must be (B, C, H, W), got shape {tuple(z.shape)}"
            )
        if z.shape[0] != latents[0].shape[0]:
            raise ConfigError(
                f"to_tfp_latent: latent {index} has batch {z.shape[0]}, "
                f"latent 0 has {latents[0].shape[0]}"
            )
    counts = _squeeze_counts([tuple(z.shape[1:]) for z in latents])
    parts = []
    for z, count in zip(latents, counts):
        for _ in range(count):
            z = _squeeze(z)
        parts.append(z)
    coarse = torch.cat(parts[::-1], dim=1)
    return coarse.permute(0, 2, 3, 1).reshape(coarse.shape[0], -1)


def from_tfp_latent(z: Tensor, latent_shapes: Sequence[LatentShape]) -> list[Tensor]:
    """TFP ``tfb.Glow``'s rank-1 latent -> glowflow's per-level latents; the exact inverse of
    :func:`to_tfp_latent`.

    Args:
        z: ``(B, D)`` in TFP's order, ``D = sum(C_i * H_i * W_i)``.
        latent_shapes: the ``(C_i, H_i, W_i)`` of glowflow's latents, finest first, the top
            last (``Glow.latent_shapes``).

    Returns:
        The latents ``[(B, C_i, H_i, W_i), ...]`` in ``latent_shapes`` order, ready for
        ``Glow.inverse_levels``.

    Raises:
        ValueError: ``z`` is not ``(B, D)`` with the expected ``D``, or the shapes do not
            form a multi-scale hierarchy.
    """
    shapes = [tuple(int(d) for d in shape) for shape in latent_shapes]
    counts = _squeeze_counts(shapes)
    size = sum(c * h * w for c, h, w in shapes)
    if z.dim() != 2 or z.shape[1] != size:
        raise ConfigError(
            f"from_tfp_latent: expected z of shape (B, {size}) for latent shapes "
            f"{shapes}, got {tuple(z.shape)}"
        )
    _, coarse_h, coarse_w = shapes[-1]
    widths = [c * 4**count for (c, _, _), count in zip(shapes, counts)]
    coarse = z.reshape(z.shape[0], coarse_h, coarse_w, sum(widths)).permute(0, 3, 1, 2)
    parts = torch.split(coarse, widths[::-1], dim=1)[::-1]
    latents = []
    for part, count in zip(parts, counts):
        for _ in range(count):
            part = _unsqueeze(part)
        latents.append(part.contiguous())
    return latents
