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
from ..glow import Glow
from ..memory import run_steps


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


def glow_of(flow: Flow) -> Glow:
    """The :class:`~glowflow.Glow` inside ``flow``; ``TypeError`` for any other bijector."""
    if not isinstance(flow.bijector, Glow):
        raise TypeError(
            f"the per-level decomposition needs a Flow over a Glow, not over a "
            f"{type(flow.bijector).__name__}"
        )
    return flow.bijector


@torch.no_grad()
def level_nats(flow: Flow, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """``(log N(z_l; 0, I), log|det J_l|)`` per level, each ``(B, L)`` in nats, for images ``x``.

    Walks ``glow.levels`` with the public pieces (squeeze, :func:`glowflow.memory.run_steps`,
    exit, top prior) exactly as :meth:`Glow.forward_levels` does, keeping each level's terms
    apart; their sum over levels is ``flow.log_prob(x)``.
    """
    glow = glow_of(flow)
    latent_terms, logdet_terms = [], []
    h = x
    for index, level in enumerate(glow.levels):
        h, _ = level.squeeze(h)
        h, steps_logdet = run_steps(level.steps, h, context, glow.config.memory_mode)
        h, latent, exit_logdet = level.exit(h, context)
        latents, logdet = [latent], steps_logdet + exit_logdet
        if index == len(glow.levels) - 1:
            latents.append(h)  # the top latent: what is left after the last exit
            if glow.top_prior is not None:
                # The prior whitens the last non-empty latent, which this level produced.
                slot = 1 if h.shape[1] else 0
                latents[slot], prior_logdet = glow.top_prior(latents[slot], context)
                logdet = logdet + prior_logdet
        present = [z for z in latents if z.shape[1]]
        latent_terms.append(standard_normal_log_prob(present) if present else zero_logdet(x))
        logdet_terms.append(logdet)
    return torch.stack(latent_terms, dim=1), torch.stack(logdet_terms, dim=1)


def level_bits(flow: Flow, x: Tensor, n_bins: int, context: Optional[Tensor] = None) -> LevelBits:
    """The per-level decomposition of the bits/dim of ``x`` ``(B, C, H, W)`` (data with
    ``n_bins`` levels, dequantized into ``[-1/2, 1/2)``); ``LevelBits.total`` equals
    ``flow.bits_per_dim(x, n_bins)``."""
    latent, logdet = level_nats(flow, x, context)
    scale = -1.0 / (flow.num_dims * math.log(2.0))
    return LevelBits(latent * scale, logdet * scale, math.log2(n_bins))
