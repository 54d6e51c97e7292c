"""One out-of-distribution experiment: a model, its in-distribution set, out sets, every score
and every metric."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from torch import Tensor

from ..errors import ConfigError
from ..flow import Flow
from .metrics import Separation, separation
from .scores import Measurements, all_scores, measure, model_bits
from .specs import ImageSet


@dataclass(frozen=True)
class ScoredSet:
    """One set's measurements and scores (see :func:`glowflow.ood.scores.all_scores`)."""

    name: str
    measured: Measurements
    scores: dict[str, Tensor]


@dataclass(frozen=True)
class Detection:
    """What :func:`detect` returns.

    Attributes:
        in_set: the in-distribution set, scored.
        out_sets: the out-of-distribution sets, scored, in the order given.
        entropy: ``H``, the reference set's mean bits/dim (the typicality test's centre).
        reference: the name of the set ``H`` was measured on.
        typicality_batch: images per typicality batch.
        metrics: ``metrics[out name][score name]``: AUROC, AUPR, FPR95 of that score.
    """

    in_set: ScoredSet
    out_sets: list[ScoredSet]
    entropy: float
    reference: str
    typicality_batch: int
    metrics: dict[str, dict[str, Separation]]

    @property
    def score_names(self) -> list[str]:
        """The scores, in report order."""
        return list(self.in_set.scores)


def detect(
    flow: Flow,
    in_set: ImageSet,
    out_sets: Sequence[ImageSet],
    reference: ImageSet,
    *,
    background: Optional[Flow] = None,
    typicality_batch: int = 1,
    draws: int = 1,
    batch_size: int = 256,
    seed: int = 0,
) -> Detection:
    """Score ``in_set`` and every out set with every score and measure how well each score
    separates them.

    ``reference`` gives the typicality test's ``H`` (in-distribution images the test never
    scores: the training split). Every set is dequantized with the same seed, and batches for
    the typicality test are drawn with it too.
    """
    if not out_sets:
        raise ConfigError("give at least one out-of-distribution set")
    names = [in_set.name, *(images.name for images in out_sets)]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"each set may be given once: {', '.join(repeated)} repeats")
    options = dict(background=background, draws=draws, batch_size=batch_size, seed=seed)
    reference_bits, _ = model_bits(flow, reference, draws=draws, batch_size=batch_size, seed=seed)
    entropy = float(reference_bits.total.mean())

    def scored(images: ImageSet) -> ScoredSet:
        measured = measure(flow, images, **options)
        return ScoredSet(
            images.name, measured, all_scores(measured, entropy, typicality_batch, seed)
        )

    inside = scored(in_set)
    outside = [scored(images) for images in out_sets]
    metrics = {
        out.name: {
            name: separation(inside.scores[name], out.scores[name]) for name in inside.scores
        }
        for out in outside
    }
    return Detection(inside, outside, entropy, reference.name, typicality_batch, metrics)
