"""Golden-set leakage: rows of the golden set that the model also trains on.

A golden row that is also a training row scores the model on what it memorised: the gate
passes on the leak, not on the model. Rows are compared on every column the two files share
(features and target), numbers as float64 (so an int column in one file and a float column
with a gap in the other still match), by a 64-bit hash per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

CHECK = "mlci_golden_rows_not_in_train"  # how validation.json names this check


def row_keys(df: pd.DataFrame, columns: list[str]) -> pd.Series:
    import pandas as pd

    part = df[columns]
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(part[c])
               and not pd.api.types.is_bool_dtype(part[c])]
    if numeric:
        part = part.astype({c: "float64" for c in numeric})
    return pd.util.hash_pandas_object(part, index=False)


@dataclass
class Overlap:
    rows: int          # rows of `rows` identical to a row of the reference
    of: int            # rows of `rows`
    examples: list[int]  # their positions in `rows` (0-based), a few

    @property
    def share(self) -> float:
        return self.rows / self.of if self.of else 0.0


def overlap(reference: pd.DataFrame, rows: pd.DataFrame) -> Overlap:
    """How many of `rows` also appear in `reference` (on their shared columns)."""
    columns = [c for c in reference.columns if c in set(rows.columns)]
    if not columns or reference.empty or rows.empty:
        return Overlap(0, len(rows), [])
    seen = row_keys(rows, columns).isin(set(row_keys(reference, columns).tolist()))
    where = seen.to_numpy().nonzero()[0]
    return Overlap(int(len(where)), len(rows), [int(i) for i in where[:5]])


def check(train: pd.DataFrame, golden: pd.DataFrame, allowed: float) -> dict[str, Any]:
    """The validation row: the share of golden rows that are also training rows."""
    o = overlap(train, golden)
    passed = o.share <= allowed
    observed = (f"{o.rows} of {o.of} golden rows ({o.share:.1%}) are identical to training "
                f"rows (allowed {allowed:.1%})")
    if o.rows:
        observed += f", e.g. golden data row {', '.join(str(i + 1) for i in o.examples[:3])}"
    return {"expectation": CHECK, "column": None,
            "kwargs": {"max_share": allowed}, "success": passed,
            "observed_value": o.share, "element_count": o.of,
            "unexpected_count": o.rows, "unexpected_percent": 100 * o.share,
            "examples": o.examples, "observed": observed}


def split_keys(df: pd.DataFrame) -> pd.Series:
    """One key per distinct row: duplicates share a key, so a split can keep them together."""
    return row_keys(df, list(df.columns))
