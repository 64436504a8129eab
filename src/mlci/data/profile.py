"""Write a starter Great Expectations suite from reference data (`mlci init --profile`).

The suite is plain JSON in the user's repo so that it is reviewed like code.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

INT_TYPES = ["int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8"]
FLOAT_TYPES = ["float64", "float32"]
MAX_CATEGORIES = 50
KL_BINS = 10
KL_THRESHOLD = 0.6  # loose: a 30-row golden split of Iris sits near 0.15, a 1-sd shift far above


def _e(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "meta": {"profiled": True}}


def profile_suite(df: pd.DataFrame, target: str, name: str, margin: float = 0.1) -> dict[str, Any]:
    """A suite dict that `gx.ExpectationSuite(**d)` loads."""
    import numpy as np
    import pandas as pd

    n = len(df)
    ex: list[dict[str, Any]] = [
        _e("expect_table_columns_to_match_set", column_set=list(map(str, df.columns)),
           exact_match=True),
        _e("expect_table_row_count_to_be_between", min_value=max(1, n // 10), max_value=n * 10),
    ]
    for col in df.columns:
        s = df[col]
        col = str(col)
        if s.notna().all():
            ex.append(_e("expect_column_values_to_not_be_null", column=col))
        is_bool = pd.api.types.is_bool_dtype(s)
        if pd.api.types.is_numeric_dtype(s) and not is_bool:
            family = INT_TYPES if pd.api.types.is_integer_dtype(s) else FLOAT_TYPES
            ex.append(_e("expect_column_values_to_be_in_type_list", column=col, type_list=family))
            vals = s.dropna().to_numpy(dtype=float)
            lo, hi = float(vals.min()), float(vals.max())
            pad = (hi - lo) * margin or abs(lo) * margin or 1.0
            categorical = pd.api.types.is_integer_dtype(s) and (col == target or s.nunique() <= 10)
            if categorical:
                values = sorted(int(v) for v in s.dropna().unique())
                ex.append(_e("expect_column_values_to_be_in_set", column=col, value_set=values))
            else:
                ex.append(_e("expect_column_values_to_be_between", column=col,
                             min_value=_round(lo - pad), max_value=_round(hi + pad)))
                counts, edges = np.histogram(vals, bins=min(KL_BINS, max(2, int(math.sqrt(n)))))
                weights = (counts / counts.sum()).tolist()
                ex.append(_e("expect_column_kl_divergence_to_be_less_than", column=col,
                             partition_object={"bins": [float(b) for b in edges],
                                               "weights": weights},
                             tail_weight_holdout=0.01, threshold=KL_THRESHOLD))
        else:
            ex.append(_e("expect_column_values_to_be_of_type", column=col, type_=str(s.dtype)))
            values = s.dropna().unique()
            if len(values) <= MAX_CATEGORIES:
                ex.append(_e("expect_column_values_to_be_in_set", column=col,
                             value_set=sorted(str(v) if not is_bool else bool(v) for v in values)))
    return {"name": name, "expectations": ex, "meta": {"generated_by": "mlci init --profile"}}


def _round(x: float) -> float:
    return float(f"{x:.6g}")
