"""How well a score separates out-of-distribution inputs from in-distribution ones.

Conventions, for every function here: the *out-of-distribution* inputs are the positive class
and a *higher* score means "more out-of-distribution": a threshold ``t`` flags the inputs with
``score >= t``. All three metrics are computed exactly over every distinct threshold, so tied
scores are handled without any dependence on input order:

* :func:`auroc` -- area under the ROC curve, ``P(s_out > s_in) + P(s_out = s_in) / 2``
  (the Mann-Whitney U statistic over ``n_in * n_out``): 1 separates perfectly, 0.5 is chance,
  0 separates perfectly the wrong way round (Nalisnick et al. 2019's raw likelihoods on SVHN
  come close to that).
* :func:`aupr` -- area under the precision-recall curve as average precision,
  ``sum_k (R_k - R_{k-1}) P_k`` over the distinct thresholds ``t_k`` from high to low; the
  chance level is the fraction of positives ``n_out / (n_in + n_out)``.
* :func:`fpr_at_tpr` -- the false-positive rate (in-distribution inputs flagged) at the highest
  threshold that flags at least ``tpr`` (95% by default) of the out-of-distribution inputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Union

import numpy as np
import torch

from ..errors import ConfigError

ArrayLike = Union[np.ndarray, torch.Tensor, list, tuple]


def _scores(values: ArrayLike, name: str) -> np.ndarray:
    """``values`` as a finite 1-D float64 array with at least one entry."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ConfigError(f"{name}: expected a 1-D array of scores, got shape {array.shape}")
    if array.size == 0:
        raise ConfigError(f"{name}: no scores")
    if not np.isfinite(array).all():
        raise ConfigError(f"{name}: {int((~np.isfinite(array)).sum())} scores are not finite")
    return array


def _counts_above(in_scores: ArrayLike, out_scores: ArrayLike) -> tuple[np.ndarray, ...]:
    """Over the distinct thresholds ``t_1 > t_2 > ...`` of both sets pooled: the number of
    in-distribution and of out-of-distribution scores ``>= t_k`` (the false and true
    positives), and the set sizes."""
    negatives = _scores(in_scores, "in-distribution scores")
    positives = _scores(out_scores, "out-of-distribution scores")
    thresholds, inverse = np.unique(np.concatenate([positives, negatives]), return_inverse=True)
    is_positive = np.arange(inverse.size) < positives.size
    # Counts per distinct value, then cumulated from the highest value down.
    tp = np.bincount(inverse[is_positive], minlength=thresholds.size)[::-1].cumsum()
    fp = np.bincount(inverse[~is_positive], minlength=thresholds.size)[::-1].cumsum()
    return fp, tp, negatives.size, positives.size


def auroc(in_scores: ArrayLike, out_scores: ArrayLike) -> float:
    """Area under the ROC curve, ``P(s_out > s_in) + P(s_out = s_in) / 2``.

    The trapezoidal area over all distinct thresholds, which equals the Mann-Whitney statistic
    with ties counted one half.

    >>> auroc([0, 1, 2], [3, 4])
    1.0
    >>> auroc([1, 2], [1, 2])
    0.5
    """
    fp, tp, n_in, n_out = _counts_above(in_scores, out_scores)
    fpr = np.concatenate([[0.0], fp / n_in])
    tpr = np.concatenate([[0.0], tp / n_out])
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def aupr(in_scores: ArrayLike, out_scores: ArrayLike) -> float:
    """Area under the precision-recall curve (out-of-distribution positive), as average
    precision ``sum_k (R_k - R_{k-1}) P_k`` over the distinct thresholds from high to low,
    with ``R_k = TP_k / n_out`` and ``P_k = TP_k / (TP_k + FP_k)``.

    >>> aupr([0, 1], [2, 3])
    1.0
    >>> aupr([5, 5], [5, 5])
    0.5
    """
    fp, tp, _, n_out = _counts_above(in_scores, out_scores)
    recall = np.concatenate([[0.0], tp / n_out])
    precision = tp / (tp + fp)
    return float(np.sum(np.diff(recall) * precision))


def fpr_at_tpr(in_scores: ArrayLike, out_scores: ArrayLike, tpr: float = 0.95) -> float:
    """The fraction of in-distribution scores ``>= t`` for the highest threshold ``t`` that
    flags at least a fraction ``tpr`` of the out-of-distribution scores.

    >>> fpr_at_tpr([0, 1, 2, 3], [2, 3])
    0.5
    """
    if not 0.0 < tpr <= 1.0:
        raise ConfigError(f"tpr must be in (0, 1], got {tpr}")
    fp, tp, n_in, n_out = _counts_above(in_scores, out_scores)
    # The first threshold (from the top) reaching the rate; integer arithmetic avoids
    # rounding at exact rates such as 19 / 20.
    first = int(np.argmax(tp >= np.ceil(tpr * n_out - 1e-9)))
    return float(fp[first] / n_in)


@dataclass(frozen=True)
class Separation:
    """The three metrics of one score on one pair of sets (see the module docstring)."""

    auroc: float
    aupr: float
    fpr95: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def separation(in_scores: ArrayLike, out_scores: ArrayLike) -> Separation:
    """AUROC, AUPR and FPR at 95% TPR of a score (higher: more out-of-distribution)."""
    return Separation(
        auroc(in_scores, out_scores),
        aupr(in_scores, out_scores),
        fpr_at_tpr(in_scores, out_scores, 0.95),
    )
