"""The per-level decomposition of a Glow's log-likelihood.

A Glow with ``L`` levels maps an image through ``L`` blocks of [squeeze -> ``K`` steps -> exit];
level ``l`` gives out a latent ``z_l`` (the last level also the top latent, through the learned
prior when there is one). The change of variables splits the negative log-likelihood by level:

    ``-log p(x) = sum_l [ -log N(z_l; 0, I) - log|det J_l| ]``,

with ``log|det J_l|`` the log-det of level ``l``'s steps, its exit and (last level) the top prior.
In bits per dimension, with ``D`` the image's dimensions and ``n_bins`` its grey levels,

    ``bpd(x) = log2(n_bins) + sum_l (latent_l + logdet_l)``,
    ``latent_l = -log N(z_l; 0, I) / (D log 2)``,  ``logdet_l = -log|det J_l| / (D log 2)``,

so the contributions add up to the total exactly. Every term is divided by the *whole* image's
``D`` (not the level's own dimensions), so each is a share of the image's bits/dim.
Kirichenko et al. 2020 ("Why normalizing flows fail to detect out-of-distribution data") and
Schirrmeister et al. 2020 ("Understanding anomaly detection with deep invertible networks through
hierarchies of distributions and features") show that the finest level mostly encodes local pixel
correlations, which is what makes raw likelihoods favour smooth images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from ..bijectors.base import zero_logdet
from ..flow import Flow, standard_normal_log_prob


@dataclass(frozen=True)
class LevelBits:
    """Per-image, per-level shares of the bits/dim (see the module docstring).

    Attributes:
        latent: ``(B, L)`` bits/dim of each level's latent term, ``-log N(z_l) / (D log 2)``.
        logdet: ``(B, L)`` bits/dim of each level's log-det, ``-log|det J_l| / (D log 2)``.
        quantization: ``log2(n_bins)``, the bin width's term, the same for every image.
    """

    latent: Tensor
    logdet: Tensor
    quantization: float

    @property
    def per_level(self) -> Tensor:
        """``(B, L)``: each level's whole share, ``latent_l + logdet_l``."""
        return self.latent + self.logdet

    @property
    def total(self) -> Tensor:
        """``(B,)``: the image's bits/dim, ``log2(n_bins) + sum_l (latent_l + logdet_l)``."""
        return self.quantization + self.per_level.sum(dim=1)


@torch.no_grad()
def level_nats(flow: Flow, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """``(log N(z_l; 0, I), log|det J_l|)`` per level, each ``(B, L)`` in nats, for images ``x``.

    Read off the flow's own encoding (:attr:`LevelEncoding.level_logdets`, with the top prior's
    log-det in the last level), so the terms are those of ``flow.log_prob`` and sum to it. A
    flow whose bijector does not break its log-det down by level counts as one level.
    """
    grouped, logdets = flow.forward_levels(x, context).level_terms()
    latent_terms = [
        standard_normal_log_prob(latents) if latents else zero_logdet(x) for latents in grouped
    ]
    return torch.stack(latent_terms, dim=1), torch.stack(logdets, dim=1)


def level_bits(flow: Flow, x: Tensor, n_bins: int, context: Optional[Tensor] = None) -> LevelBits:
    """The per-level decomposition of the bits/dim of ``x`` ``(B, C, H, W)`` (data with
    ``n_bins`` levels, dequantized into ``[-1/2, 1/2)``); ``LevelBits.total`` equals
    ``flow.bits_per_dim(x, n_bins)``."""
    latent, logdet = level_nats(flow, x, context)
    scale = -1.0 / (flow.num_dims * math.log(2.0))
    return LevelBits(latent * scale, logdet * scale, math.log2(n_bins))
