"""The vectorised metrics agree with scikit-learn, and the paired bootstrap behaves."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mlci.stats.metrics import Predictions, metrics_of, paired_bootstrap, weighted_metrics


def _random_classification(rng, n, k):
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + np.eye(k)[y] * 1.5
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    proba = np.round(proba, 2)  # creates ties, which AUC must handle
    proba = proba / proba.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    return Predictions(y, pred, proba, list(range(k)))


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_matches_sklearn(k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pr = _random_classification(rng, 200, k)
    m = metrics_of("classification", pr)
    y, p = pr.y_true, pr.y_pred
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p))
    for name in ("precision", "recall", "f1"):
        fn = getattr(skm, f"{name}_score")
        assert m[f"{name}_macro"] == pytest.approx(fn(y, p, average="macro", zero_division=0))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, pr.proba, labels=list(range(k))))
    ref_auc = (skm.roc_auc_score(y, pr.proba[:, 1]) if k == 2 else
               skm.roc_auc_score(y, pr.proba, multi_class="ovr", average="macro"))
    assert m["roc_auc"] == pytest.approx(ref_auc)


def test_weights_equal_repeated_rows() -> None:
    """A bootstrap weight of 3 on a row is the same as that row appearing three times."""
    rng = np.random.default_rng(7)
    pr = _random_classification(rng, 60, 3)
    w = rng.integers(0, 4, 60).astype(float)
    idx = np.repeat(np.arange(60), w.astype(int))
    rep = Predictions(pr.y_true[idx], pr.y_pred[idx], pr.proba[idx], pr.classes)
    got = {k: v[0] for k, v in weighted_metrics("classification", pr, w[None, :]).items()}
    want = metrics_of("classification", rep)
    for k, v in want.items():
        assert got[k] == pytest.approx(v), k


def test_regression_matches_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=300)
    yp = y + rng.normal(scale=0.3, size=300)
    m = metrics_of("regression", Predictions(y, yp, None, None))
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, yp))
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, yp)))
    assert m["r2"] == pytest.approx(skm.r2_score(y, yp))


def test_paired_bootstrap_ci_covers_zero_for_identical_models_and_not_for_a_worse_one() -> None:
    rng = np.random.default_rng(11)
    pr = _random_classification(rng, 400, 3)
    same = paired_bootstrap("classification", pr, pr, 500, 0.95)
    assert same["accuracy"] == (0.0, 0.0)
    worse_pred = pr.y_pred.copy()
    flip = rng.random(400) < 0.3
    worse_pred[flip] = (worse_pred[flip] + 1) % 3
    worse = Predictions(pr.y_true, worse_pred, pr.proba, pr.classes)
    ci = paired_bootstrap("classification", pr, worse, 500, 0.95)["accuracy"]
    diff = metrics_of("classification", pr)["accuracy"] - metrics_of("classification", worse)[
        "accuracy"]
    assert ci[0] > 0 and ci[0] <= diff <= ci[1]
