"""The OOD metrics against scikit-learn's on the same scores (ties and unequal sizes)."""

import numpy as np
import pytest

from glowflow.ood import aupr, auroc
from glowflow.ood.metrics import fpr_at_tpr

metrics = pytest.importorskip("sklearn.metrics")


def labelled(in_scores, out_scores):
    y = np.r_[np.zeros(len(in_scores)), np.ones(len(out_scores))]
    return y, np.r_[in_scores, out_scores]


@pytest.mark.parametrize("seed", range(6))
def test_auroc_aupr_and_fpr95_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    n_in, n_out = rng.integers(5, 300, size=2)
    in_scores = rng.normal(0.0, 1.0, n_in)
    out_scores = rng.normal(rng.uniform(-1, 2), rng.uniform(0.5, 2), n_out)
    if seed % 2:  # heavy ties: scores on a coarse grid
        in_scores, out_scores = np.round(in_scores, 0), np.round(out_scores, 0)
    y, s = labelled(in_scores, out_scores)
    assert auroc(in_scores, out_scores) == pytest.approx(metrics.roc_auc_score(y, s), abs=1e-12)
    assert aupr(in_scores, out_scores) == pytest.approx(
        metrics.average_precision_score(y, s), abs=1e-12
    )
    fpr, tpr, _ = metrics.roc_curve(y, s, drop_intermediate=False)
    expected = fpr[np.argmax(tpr >= 0.95 - 1e-12)]
    assert fpr_at_tpr(in_scores, out_scores) == pytest.approx(expected, abs=1e-12)
