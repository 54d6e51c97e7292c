"""Out-of-distribution detection with a likelihood model (``glowflow ood``).

One concept per module: :mod:`~glowflow.ood.metrics` (AUROC, AUPR, FPR at 95% TPR),
:mod:`~glowflow.ood.levels` (the per-level decomposition of a Glow's bits/dim),
:mod:`~glowflow.ood.compression` (PNG and zlib code lengths), :mod:`~glowflow.ood.scores`
(raw bits/dim, typicality, complexity-corrected, likelihood ratio, per-level scores, with their
formulas and papers), :mod:`~glowflow.ood.specs` (image sets by SPEC),
:mod:`~glowflow.ood.detect` (one experiment) and :mod:`~glowflow.ood.report` (its files).
"""

from glowflow.ood.detect import Detection, ScoredSet, detect
from glowflow.ood.levels import LevelBits, level_bits, level_nats
from glowflow.ood.metrics import Separation, aupr, auroc, fpr_at_tpr, separation
from glowflow.ood.scores import (
    Measurements,
    all_scores,
    complexity_corrected,
    likelihood_ratio,
    measure,
    model_bits,
    typicality,
)
from glowflow.ood.specs import TRANSFORMS, ImageSet, image_set, load_set, transform_set

__all__ = [
    "TRANSFORMS",
    "Detection",
    "ImageSet",
    "LevelBits",
    "Measurements",
    "ScoredSet",
    "Separation",
    "all_scores",
    "aupr",
    "auroc",
    "complexity_corrected",
    "detect",
    "fpr_at_tpr",
    "image_set",
    "level_bits",
    "level_nats",
    "likelihood_ratio",
    "load_set",
    "measure",
    "model_bits",
    "separation",
    "transform_set",
    "typicality",
]
