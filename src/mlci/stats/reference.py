"""Reference statistics of the training data, computed once at training time and stored with
the model (`mlci/reference.json` on its run), so monitoring never needs the raw training data.

This is the only place where a reference is summarised: the data update's drift check builds
the same profile from the previous training data, so `data update` and `monitor` judge one
representation with one code path (`mlci.stats.drift`).

Numeric columns keep 1,001 quantiles (enough for KS and Wasserstein to within 0.001 of the
exact two-sample values), equal-mass slice means, mean, std and the PSI bins; a column of at
most `EXACT_MAX` values also keeps the sorted values themselves, so small references are
compared exactly. Categorical columns keep counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

SCHEMA = "mlci.reference/1"
GRID = np.linspace(0.0, 1.0, 1001)
SLICES = 1000
PSI_BINS = 10
EXACT_MAX = 5000  # references up to this size keep their values (exact KS and Wasserstein)


def is_numeric(s: pd.Series) -> bool:
    """Numeric columns get distribution tests; booleans and small integer codes are categories."""
    import pandas as pd

    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) and \
        not (pd.api.types.is_integer_dtype(s) and s.nunique() <= 10)


def psi_edges(values: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """Inner edges of the PSI bins: the reference's interpolated quantiles, deduplicated.

    The one definition of the bins (a value x falls in bin `searchsorted(edges, x, "right")`).
    """
    return np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))[1:-1]


def bin_shares(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(1, counts.sum())


def sorted_bin_shares(edges: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """`bin_shares` of sorted values, from where each edge falls among them (the values
    before edge k are those of bins 0..k): no search per value."""
    ends = np.searchsorted(sorted_values, edges, side="left")
    counts = np.diff(np.concatenate([[0], ends, [len(sorted_values)]]))
    return counts / max(1, counts.sum())


def slice_means(sorted_values: np.ndarray, k: int = SLICES) -> np.ndarray:
    """Mean of the quantile function over each of k equal-mass slices (exact for any n).

    Wasserstein-1 is the integral of |Q_ref - Q_cur|; averaging each slice keeps outliers
    and heavy tails at their true weight, which sampled quantiles at the ends do not.
    """
    m = len(sorted_values)
    csum = np.concatenate([[0.0], np.cumsum(sorted_values, dtype=float)])

    def integral(u: np.ndarray) -> np.ndarray:  # ∫_0^u Q(t) dt
        pos = u * m
        j = np.minimum(np.floor(pos).astype(int), m - 1)
        return (csum[j] + (pos - j) * sorted_values[j]) / m

    edges = np.linspace(0.0, 1.0, k + 1)
    return np.diff(integral(edges)) * k


def numeric_profile(values: np.ndarray) -> dict[str, Any]:
    v = np.sort(np.asarray(values, dtype=float))
    if len(v) == 0:
        return {"kind": "numeric", "n": 0}
    edges = psi_edges(v)
    prof: dict[str, Any] = {
        "kind": "numeric", "n": int(len(v)),
        "quantiles": [float(x) for x in np.quantile(v, GRID)],
        "slice_means": [float(x) for x in slice_means(v)],
        "mean": float(v.mean()), "std": float(v.std()),
        "psi_edges": [float(e) for e in edges],
        "psi_shares": [float(c) for c in bin_shares(edges, v)]}
    if len(v) <= EXACT_MAX:
        prof["values"] = [float(x) for x in v]
    return prof


def column_profile(s: pd.Series) -> dict[str, Any]:
    s = s.dropna()
    if is_numeric(s):
        return numeric_profile(s.to_numpy(dtype=float))
    counts = s.astype(str).value_counts()
    return {"kind": "categorical", "n": int(len(s)),
            "counts": {str(k): int(c) for k, c in counts.items()}}


def build(x: pd.DataFrame, predictions: Any | None = None) -> dict[str, Any]:
    import pandas as pd

    prof = {"schema": SCHEMA, "rows": int(len(x)), "features": list(map(str, x.columns)),
            "columns": {str(c): column_profile(x[c]) for c in x.columns}}
    if predictions is not None:
        prof["prediction"] = column_profile(pd.Series(np.asarray(predictions)).astype(str))
    return prof
