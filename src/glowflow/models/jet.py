"""Jet (Kolesnikov, Susano Pinto, Tschannen 2024, arXiv:2412.15129): a normalizing flow of
affine couplings with ViT conditioners on patch tokens, under a standard normal base."""

from __future__ import annotations

import itertools
from typing import Optional, Sequence

import torch

from ..bijectors.chain import Chain
from ..bijectors.jet_coupling import KINDS, SPATIAL_PATTERNS, JetCoupling, spatial_permutation
from ..bijectors.patchify import Patchify
from ..errors import ConfigError
from ..flow import Flow
from ..seeding import seeded


def jet(
    event_shape: Sequence[int],
    patch_size: int = 4,
    num_couplings: int = 32,
    block_depth: int = 2,
    width: int = 512,
    *,
    head_dim: int = 64,
    expansion: int = 4,
    kinds: Sequence[str] = ("channels", "channels", "channels", "channels", "spatial"),
    spatial_patterns: Sequence[str] = SPATIAL_PATTERNS,
    seed: Optional[int] = None,
    validate_args: bool = False,
) -> Flow:
    """A Jet for images ``event_shape = (C, H, W)``:
    ``x -> Patchify(p) -> coupling_1 -> ... -> coupling_K -> unpatchify -> z (C, H, W)``.

    Coupling ``k`` is a :class:`~glowflow.bijectors.jet_coupling.JetCoupling` of kind
    ``kinds[k mod len(kinds)]``: a channel coupling gets a fresh fixed random permutation of
    the ``C p^2`` entries of a token, a spatial one the next of ``spatial_patterns`` (cycled).
    Defaults are the paper's ImageNet-64 configuration (32 couplings of ViT depth 2, width 512,
    8 heads of 64, four channel couplings per spatial one, all six spatial patterns).

    Args:
        patch_size: ``p``; ``H`` and ``W`` divisible by it.
        num_couplings: ``K``.
        block_depth: transformer layers of each coupling's ViT.
        width: the ViTs' width.
        seed: seeds the permutations and the initialization.
    """
    event_shape = tuple(int(s) for s in event_shape)
    if (
        len(event_shape) != 3
        or patch_size < 1
        or event_shape[1] % patch_size
        or event_shape[2] % patch_size
    ):
        raise ConfigError(
            f"jet: needs (C, H, W) with H and W divisible by patch_size {patch_size}, got "
            f"{event_shape}"
        )
    if num_couplings < 1 or block_depth < 1:
        raise ConfigError(
            f"jet: num_couplings and block_depth must be >= 1, got {num_couplings}, {block_depth}"
        )
    if head_dim < 1 or width % head_dim:
        raise ConfigError(f"jet: width {width} must be a multiple of head_dim {head_dim}")
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown:
        raise ConfigError(f"jet: kinds must be a non-empty list of {KINDS}, got {list(kinds)}")
    if "spatial" in kinds and not spatial_patterns:
        raise ConfigError("jet: spatial couplings need at least one spatial pattern")
    patchify = Patchify(patch_size, event_shape)
    num_tokens, token_dim = patchify.forward_shape(event_shape)
    grid = (event_shape[1] // patch_size, event_shape[2] // patch_size)
    with seeded(seed):
        patterns = itertools.cycle(spatial_patterns)
        couplings = []
        for _, kind in zip(range(num_couplings), itertools.cycle(kinds)):
            if kind == "channels":
                permutation = torch.randperm(token_dim)
            else:
                permutation = spatial_permutation(grid, next(patterns))
            couplings.append(
                JetCoupling(
                    num_tokens,
                    token_dim,
                    kind,
                    permutation,
                    width,
                    block_depth,
                    head_dim,
                    expansion,
                )
            )
    chain = Chain(patchify, *couplings, Patchify(patch_size, event_shape).inv)
    return Flow(chain, event_shape, validate_args)
