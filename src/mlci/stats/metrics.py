"""Metrics as weighted sums, so one code path gives both the point value (all weights 1)
and a paired bootstrap (multinomial weights shared by candidate and champion).

Vectorised in numpy: 1,000 resamples of every metric cost milliseconds, not seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

EPS = np.finfo(np.float64).eps


@dataclass
class Predictions:
    """What a model said about the golden rows, aligned to a shared class list."""

    y_true: np.ndarray            # class index (classification) or value (regression)
    y_pred: np.ndarray            # class index or value
    proba: np.ndarray | None      # (n, K) aligned to `classes`, or None
    classes: list[Any] | None
    positive: int | None = None   # index of the positive class: precision/recall/f1/AP of it

    def to_json(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "y_pred": self.y_pred.tolist(),
            "proba": None if self.proba is None else np.round(self.proba, 6).tolist(),
        }


def predict(task: str, model: Any, x, y, classes: list[Any] | None = None) -> Predictions:
    if task == "regression":
        yp = np.asarray(model.predict(x), dtype=float)
        return Predictions(np.asarray(y, dtype=float), yp, None, None)
    y_arr = np.asarray(y)
    model_classes = list(getattr(model, "classes_", []))
    if classes is None:
        classes = sorted(set(y_arr.tolist()) | set(model_classes), key=str)
    index = {c: i for i, c in enumerate(classes)}
    raw_pred = np.asarray(model.predict(x))
    yp = np.array([index.setdefault(v, len(index)) for v in raw_pred.tolist()])
    if len(index) > len(classes):  # model predicted a label we had not seen
        classes = list(index)
    yt = np.array([index.get(v, -1) for v in y_arr.tolist()])
    proba = None
    if hasattr(model, "predict_proba") and model_classes:
        try:
            p = np.asarray(model.predict_proba(x), dtype=float)
            proba = np.zeros((len(yt), len(classes)))
            for j, c in enumerate(model_classes):
                proba[:, index[c]] = p[:, j]
        except Exception:  # noqa: BLE001 - some estimators expose but cannot use predict_proba
            proba = None
    return Predictions(yt, yp, proba, list(classes))


def from_json(d: dict[str, Any], y_true: np.ndarray) -> Predictions:
    proba = None if d.get("proba") is None else np.asarray(d["proba"], dtype=float)
    return Predictions(y_true, np.asarray(d["y_pred"]), proba, d.get("classes"))


def _weighted_auc(score: np.ndarray, pos: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ROC AUC (ties count half) for each row of weights w (B, n); nan if a class is absent."""
    order = np.argsort(score, kind="mergesort")
    s, p, w = score[order], pos[order], w[:, order]
    wp, wn = w * p, w * (~p)
    _, start = np.unique(s, return_index=True)  # tie groups in sorted order
    group_neg = np.add.reduceat(wn, start, axis=1)                 # (B, G)
    below = np.cumsum(group_neg, axis=1) - group_neg               # neg weight strictly below
    group_pos = np.add.reduceat(wp, start, axis=1)
    num = (group_pos * (below + 0.5 * group_neg)).sum(axis=1)
    den = wp.sum(axis=1) * wn.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def weighted_metrics(task: str, pr: Predictions, w: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric as an array over the rows of w (B, n)."""
    w = np.atleast_2d(np.asarray(w, dtype=float))
    tot = w.sum(axis=1)
    if task == "regression":
        e = pr.y_pred - pr.y_true
        mean_y = (w @ pr.y_true) / tot
        ss_res = w @ (e * e)
        ss_tot = (w * (pr.y_true[None, :] - mean_y[:, None]) ** 2).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            r2 = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.nan)
        return {"mae": (w @ np.abs(e)) / tot, "rmse": np.sqrt(ss_res / tot), "r2": r2}
    k = len(pr.classes or [])
    k = max(k, int(max(pr.y_true.max(initial=0), pr.y_pred.max(initial=0))) + 1)
    onehot = np.zeros((len(pr.y_true), k * k))
    onehot[np.arange(len(pr.y_true)), pr.y_true * k + pr.y_pred] = 1.0
    cm = (w @ onehot).reshape(-1, k, k)                  # (B, true, pred)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support, predicted = cm.sum(axis=2), cm.sum(axis=1)
    present = (support + predicted) > 0                  # sklearn's labels: y_true ∪ y_pred
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, 0.0)
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        f1 = np.where(2 * tp + (predicted - tp) + (support - tp) > 0,
                      2 * tp / (2 * tp + (predicted - tp) + (support - tp)), 0.0)
        n_present = present.sum(axis=1)
        out = {
            "accuracy": tp.sum(axis=1) / tot,
            "balanced_accuracy": (recall * (support > 0)).sum(axis=1) / (support > 0).sum(axis=1),
            "precision_macro": (precision * present).sum(axis=1) / n_present,
            "recall_macro": (recall * present).sum(axis=1) / n_present,
            "f1_macro": (f1 * present).sum(axis=1) / n_present,
        }
    if pr.positive is not None:
        out.update(positive_metrics(pr, w, tp[:, pr.positive], support[:, pr.positive],
                                    predicted[:, pr.positive]))
    if pr.proba is not None:
        p_true = np.clip(pr.proba[np.arange(len(pr.y_true)), pr.y_true], EPS, 1.0)
        out["log_loss"] = (w @ -np.log(p_true)) / tot
        if k == 2:
            out["roc_auc"] = _weighted_auc(pr.proba[:, 1], pr.y_true == 1, w)
        else:
            aucs = np.stack([_weighted_auc(pr.proba[:, c], pr.y_true == c, w) for c in range(k)
                             if (pr.y_true == c).any()], axis=0)
            with np.errstate(invalid="ignore"):
                out["roc_auc"] = np.nanmean(aucs, axis=0) if len(aucs) else np.full(len(w), np.nan)
    return out


def positive_metrics(pr: Predictions, w: np.ndarray, tp: np.ndarray, support: np.ndarray,
                     predicted: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall and F1 of the positive class (what an imbalanced problem is about;
    accuracy rewards always predicting the majority), and its average precision from the
    probabilities. A class never predicted has precision 0 (sklearn's zero_division=0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {"precision": np.where(predicted > 0, tp / predicted, 0.0),
               "recall": np.where(support > 0, tp / support, np.nan),
               "f1": np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)}
    if pr.proba is not None and pr.positive is not None:
        out["average_precision"] = _weighted_ap(pr.proba[:, pr.positive],
                                                pr.y_true == pr.positive, w)
    return out


def _weighted_ap(score: np.ndarray, pos: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average precision (sklearn's step-wise sum over distinct thresholds) per row of w."""
    order = np.argsort(-score, kind="mergesort")
    s, p, w = -score[order], pos[order], w[:, order]
    _, start = np.unique(s, return_index=True)             # tie groups, highest score first
    tp = np.cumsum(np.add.reduceat(w * p, start, axis=1), axis=1)
    fp = np.cumsum(np.add.reduceat(w * ~p, start, axis=1), axis=1)
    group_pos = np.diff(tp, axis=1, prepend=0.0)
    total = tp[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        return np.where(total > 0, (group_pos * precision).sum(axis=1) / total, np.nan)


def positive_index(classes: list[Any], y_true: np.ndarray, configured: Any = None) -> int | None:
    """Which class is "positive": the configured label; else, for two classes, True or 1 when
    present, else the rarer class on these rows. None: several classes and none configured.
    A configured label the data lacks is a ValueError."""
    if configured is not None:
        for i, c in enumerate(classes):
            if c == configured or str(c) == str(configured):
                return i
        raise ValueError(f"positive_label {configured!r} is not one of the classes "
                         f"{[_jsonable(c) for c in classes][:10]}")
    if len(classes) != 2:
        return None
    for i, c in enumerate(classes):
        if c is True or (type(c) is not bool and c == 1 and 0 in classes):
            return i
    counts = np.bincount(y_true[y_true >= 0], minlength=2)[:2]
    return 0 if counts[0] < counts[1] else 1


def metrics_of(task: str, pr: Predictions) -> dict[str, float | None]:
    m = weighted_metrics(task, pr, np.ones((1, len(pr.y_true))))
    return {k: _f(v[0]) for k, v in m.items()}


def point_metrics(task: str, y, model, x) -> dict[str, float | None]:
    return metrics_of(task, predict(task, model, x, y))


def per_class(pr: Predictions) -> list[dict[str, Any]]:
    classes = pr.classes or []
    k = len(classes)
    cm = confusion(pr)
    rows = []
    for c in range(k):
        tp = cm[c, c]
        support, predicted = cm[c].sum(), cm[:, c].sum()
        p = tp / predicted if predicted else 0.0
        r = tp / support if support else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        rows.append({"class": _jsonable(classes[c]), "precision": round(p, 4),
                     "recall": round(r, 4), "f1": round(f, 4), "support": int(support)})
    return rows


def confusion(pr: Predictions) -> np.ndarray:
    k = len(pr.classes or [])
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (pr.y_true, pr.y_pred), 1)
    return cm


def paired_bootstrap(task: str, cand: Predictions, champ: Predictions, n_boot: int,
                     confidence: float, seed: int = 0) -> dict[str, tuple[float, float] | None]:
    """Percentile CI of (candidate − champion) per metric, same resampled rows for both."""
    n = len(cand.y_true)
    if n_boot <= 0 or n == 0:
        return {}
    rng = np.random.default_rng(seed)
    w = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)
    a, b = weighted_metrics(task, cand, w), weighted_metrics(task, champ, w)
    lo_q, hi_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    out: dict[str, tuple[float, float] | None] = {}
    for k in a.keys() & b.keys():
        d = a[k] - b[k]
        d = d[np.isfinite(d)]
        out[k] = (float(np.quantile(d, lo_q)), float(np.quantile(d, hi_q))) if len(d) else None
    return out


def _f(v: Any) -> float | None:
    v = float(v)
    return None if not np.isfinite(v) else v


def _jsonable(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
