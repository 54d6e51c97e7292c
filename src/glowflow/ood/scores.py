"""Out-of-distribution scores of a likelihood model, each oriented so that a *higher* score
means "more out-of-distribution".

What a model says about each image is measured once (:func:`measure`: the per-level
bits/dim, a background model's bits/dim, compressors' code lengths); the scores are formulas on
those measurements. All are in bits per dimension, ``D = C H W``:

* raw bits/dim (:func:`glowflow.bits_per_dim`): ``bpd(x) = (-log p(x) + D log n_bins) /
  (D log 2)``. Nalisnick et al. 2019, "Do deep generative models know what they don't know?",
  show that it ranks SVHN as *more* likely than CIFAR-10 under a CIFAR-10 Glow.
* :func:`typicality`: for a batch ``x_1..x_M``, ``|(1/M) sum_m bpd(x_m) - H|``, with ``H`` the
  mean bits/dim of unscored in-distribution images (an estimate of the entropy rate). Nalisnick
  et al. 2019b, "Detecting out-of-distribution inputs to deep generative models using
  typicality": an input far from the typical set is out of distribution whether its likelihood is
  too low *or too high*. Batch-wise: one score per batch of ``M`` images.
* :func:`complexity_corrected`: ``S(x) = bpd(x) - L(x) / D`` with ``L(x)`` a lossless
  compressor's code length in bits (PNG or zlib, :mod:`glowflow.ood.compression`). Serrà et al.
  2020, "Input complexity and out-of-distribution detection with likelihood-based generative
  models": simple inputs get high likelihoods because they are simple, and the compressor
  measures that simplicity.
* :func:`likelihood_ratio`: ``bpd(x) - bpd_background(x)``, i.e. ``-(log p(x) -
  log p_background(x)) / (D log 2)``: Ren et al. 2019, "Likelihood ratios for
  out-of-distribution detection" (background model trained on perturbed inputs), and
  Schirrmeister et al. 2020 (a general or smaller model as background): the background model
  explains the low-level statistics the two share, and the ratio keeps the semantic part.
* per-level bits/dim (:mod:`glowflow.ood.levels`): level ``l``'s share ``latent_l + logdet_l``
  of the bits/dim (Kirichenko et al. 2020; Schirrmeister et al. 2020).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from ..data import dequantize
from ..errors import ConfigError
from ..flow import Flow
from .compression import code_length_bpd
from .levels import LevelBits, level_bits
from .specs import ImageSet


@dataclass(frozen=True)
class Measurements:
    """What a model (and the compressors) say about each image of a set, all ``(N,)`` bits/dim
    on the CPU in float64, except ``levels``.

    Attributes:
        levels: the per-level decomposition of the model's bits/dim, averaged over the
            dequantization draws (``levels.total`` is the raw bits/dim).
        background_bpd: the background model's bits/dim (same draws), or ``None``.
        png_bpd: PNG code length of the levels, bits/dim.
        zlib_bpd: zlib code length of the levels, bits/dim.
    """

    levels: LevelBits
    background_bpd: Optional[Tensor]
    png_bpd: Tensor
    zlib_bpd: Tensor

    @property
    def bpd(self) -> Tensor:
        """Raw bits/dim, ``(N,)``."""
        return self.levels.total


def _device(flow: Flow) -> torch.device:
    return next(flow.parameters()).device


@torch.no_grad()
def model_bits(
    flow: Flow,
    images: ImageSet,
    *,
    background: Optional[Flow] = None,
    draws: int = 1,
    batch_size: int = 256,
    seed: int = 0,
) -> tuple[LevelBits, Optional[Tensor]]:
    """The per-level bits/dim of every image of ``images`` under ``flow`` and, with a
    ``background`` model, its bits/dim ``(N,)`` there (else ``None``); float64 on the CPU.

    Each image is uniformly dequantized ``draws`` times (a generator seeded with ``seed``; both
    models see the same points) and the bits averaged over the draws, as ``glowflow eval`` does.
    Both flows must be unconditional Glows for images of ``images``' shape; they stay in the
    mode they are in (load them in eval mode).
    """
    if draws < 1 or batch_size < 1:
        raise ConfigError(f"draws and batch_size must be >= 1, got {draws} and {batch_size}")
    if len(images) == 0:
        raise ConfigError(f"{images.name} holds no images")
    shape = tuple(images.levels.shape[1:])
    for model in [flow] if background is None else [flow, background]:
        if model.num_classes is not None:
            raise ConfigError(
                "out-of-distribution scores need unconditional models; this one is "
                "class-conditional"
            )
        if model.event_shape != shape:
            raise ConfigError(
                f"{images.name} has images of shape {shape}; a model takes {model.event_shape}"
            )
    device = _device(flow)
    generator = torch.Generator(device=device).manual_seed(seed)
    latent, logdet, back = [], [], []
    for start in range(0, len(images), batch_size):
        levels = images.levels[start : start + batch_size].to(device)
        parts = torch.zeros((), dtype=torch.float64)  # broadcast to (2, B, L) on the first draw
        back_sum = torch.zeros(levels.shape[0], dtype=torch.float64)
        for _ in range(draws):
            x = dequantize(levels, images.n_bins, generator=generator)
            bits = level_bits(flow, x, images.n_bins)
            parts = parts + torch.stack([bits.latent, bits.logdet]).double().cpu()
            if background is not None:
                back_sum += (
                    background.bits_per_dim(x.to(_device(background)), images.n_bins).double().cpu()
                )
        latent.append(parts[0] / draws)
        logdet.append(parts[1] / draws)
        back.append(back_sum / draws)
    decomposition = LevelBits(torch.cat(latent), torch.cat(logdet), math.log2(images.n_bins))
    return decomposition, torch.cat(back) if background is not None else None


def measure(
    flow: Flow,
    images: ImageSet,
    *,
    background: Optional[Flow] = None,
    draws: int = 1,
    batch_size: int = 256,
    seed: int = 0,
) -> Measurements:
    """:func:`model_bits` and the PNG and zlib code lengths of every image of ``images``."""
    levels, background_bpd = model_bits(
        flow, images, background=background, draws=draws, batch_size=batch_size, seed=seed
    )
    return Measurements(
        levels,
        background_bpd,
        code_length_bpd(images.levels, "png"),
        code_length_bpd(images.levels, "zlib"),
    )


def typicality(bpd: Tensor, entropy: float, batch_size: int, seed: int = 0) -> Tensor:
    """``|(1/M) sum_m bpd(x_m) - H|`` for consecutive batches of ``M = batch_size`` images after
    a random order (a generator seeded with ``seed``), ``(N // M,)``: the last ``N mod M``
    images are left out. ``H = entropy`` is the mean bits/dim of in-distribution images that
    are not scored (Nalisnick et al. 2019b use the training set; ``glowflow ood`` defaults to
    the model's validation split). Nalisnick et al. 2019b."""
    if not 1 <= batch_size <= len(bpd):
        raise ConfigError(
            f"the typicality batch size must be between 1 and the set's {len(bpd)} "
            f"images, got {batch_size}"
        )
    order = torch.randperm(len(bpd), generator=torch.Generator().manual_seed(seed))
    count = len(bpd) // batch_size
    batches = bpd[order[: count * batch_size]].reshape(count, batch_size)
    return (batches.mean(dim=1) - entropy).abs()


def complexity_corrected(bpd: Tensor, code_length_bpd: Tensor) -> Tensor:
    """``S(x) = bpd(x) - L(x) / D``: the model's code length minus a lossless compressor's, in
    bits/dim (Serrà et al. 2020)."""
    return bpd - code_length_bpd


def likelihood_ratio(bpd: Tensor, background_bpd: Tensor) -> Tensor:
    """``bpd(x) - bpd_background(x) = -(log p(x) - log p_background(x)) / (D log 2)``, the
    negated log-likelihood ratio in bits/dim (Ren et al. 2019; Schirrmeister et al. 2020)."""
    return bpd - background_bpd


def all_scores(
    measured: Measurements, entropy: float, typicality_batch: int, seed: int = 0
) -> dict[str, Tensor]:
    """Every score of one set by name, higher meaning "more out-of-distribution": ``bpd``,
    ``typicality`` (one per batch), ``complexity-png``, ``complexity-zlib``,
    ``likelihood-ratio`` (with a background model) and ``level-1`` .. ``level-L`` (finest
    first)."""
    bpd = measured.bpd
    scores = {
        "bpd": bpd,
        "typicality": typicality(bpd, entropy, typicality_batch, seed),
        "complexity-png": complexity_corrected(bpd, measured.png_bpd),
        "complexity-zlib": complexity_corrected(bpd, measured.zlib_bpd),
    }
    if measured.background_bpd is not None:
        scores["likelihood-ratio"] = likelihood_ratio(bpd, measured.background_bpd)
    for index, share in enumerate(measured.levels.per_level.unbind(dim=1)):
        scores[f"level-{index + 1}"] = share
    return scores
