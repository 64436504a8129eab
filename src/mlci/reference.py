"""Reference statistics of the training data, computed once at training time and stored with
the model (`mlci/reference.json` on its run), so monitoring never needs the raw training data.

Numeric columns keep 1,001 quantiles (enough for KS and Wasserstein to within 0.001 of the
exact two-sample values), mean, std and decile bins for PSI; categorical columns keep counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

SCHEMA = "mlci.reference/1"
GRID = np.linspace(0.0, 1.0, 1001)


def column_profile(s: pd.Series) -> dict[str, Any]:
    from mlci.drift import is_numeric

    s = s.dropna()
    if is_numeric(s):
        v = s.to_numpy(dtype=float)
        edges = np.unique(np.quantile(v, np.linspace(0, 1, 11)))[1:-1]
        counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(edges) + 1)
        return {"kind": "numeric", "n": int(len(v)),
                "quantiles": [float(x) for x in np.quantile(v, GRID)],
                "mean": float(v.mean()), "std": float(v.std()),
                "psi_edges": [float(e) for e in edges],
                "psi_shares": [float(c) for c in counts / max(1, counts.sum())]}
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
