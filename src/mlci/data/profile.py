"""Write a starter Great Expectations suite from reference data (`mlci init --profile`).

The suite is plain JSON in the user's repo so that it is reviewed like code. Each bound has a
stated tolerance, chosen so that held-out rows from the same distribution pass (tested on
several scikit-learn data sets, splits and seeds) while broken data fails:

- columns: the exact set; row count within [n/10, 10n] (training data only);
- missing values: at most the profiled share p plus 2 points plus 3 standard errors of a
  share on 50 rows, `p + 0.02 + 3·sqrt(p(1-p)/50)` (a column without gaps allows 2 %);
- types: numbers stay numbers (integer or float: one gap turns an integer column into
  floats), text stays text (the profiled dtype), dates match ISO 8601 (as many as in the
  reference: usually all);
- numbers: at least 95 % of the rows within the profiled range widened by 25 % of its width
  on each side (skewed columns put a held-out row beyond the training maximum now and then;
  a unit change or a sentinel like -999 moves most rows), and a
  KL divergence below 0.6 nats against the profiled decile histogram (equal-mass bins, so
  no bin is empty; 1 % of the weight is held for values beyond the range). A 30-row sample
  of the same distribution sits near 0.15;
- categories (≤ 50 levels, and integer columns with ≤ 10 values): at least 98 % of the rows
  in the profiled set; the target of a classifier: all of them;
- identifiers (see `mlci.data.preprocess.is_identifier`): unique and present.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

NUMBER_TYPES = ["int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8",
                "Int64", "Int32", "float64", "float32", "Float64"]
MAX_CATEGORIES = 50
INT_CATEGORIES = 10
KL_BINS = 10
KL_THRESHOLD = 0.6
RANGE_MARGIN = 0.25
RANGE_MOSTLY = 0.95
SET_MOSTLY = 0.98
ISO_DATE = (r"^\s*\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?"
            r"\s*(Z|[+-]\d{2}(:?\d{2})?)?)?\s*$")


def _e(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "meta": {"profiled": True}}


def allowed_missing(share: float) -> float:
    return min(1.0, share + 0.02 + 3 * math.sqrt(share * (1 - share) / 50))


def profile_suite(df: pd.DataFrame, target: str, name: str,
                  task: str = "classification") -> dict[str, Any]:
    """A suite dict that `gx.ExpectationSuite(**d)` loads."""
    n = len(df)
    ex: list[dict[str, Any]] = [
        _e("expect_table_columns_to_match_set", column_set=list(map(str, df.columns)),
           exact_match=True),
        _e("expect_table_row_count_to_be_between", min_value=max(1, n // 10), max_value=n * 10),
    ]
    for col in df.columns:
        ex += column_expectations(df[col], str(col), is_target=col == target, task=task)
    return {"name": name, "expectations": ex, "meta": {"generated_by": "mlci init --profile"}}


def column_expectations(s: pd.Series, col: str, *, is_target: bool = False,
                        task: str = "classification") -> list[dict[str, Any]]:
    import pandas as pd

    from mlci.data.preprocess import is_date, is_identifier, is_text

    ex = [_missing(s, col, strict=is_target)]
    v = s.dropna()
    if v.empty:
        return ex
    if not is_target and is_identifier(s, col):
        return ex + [_e("expect_column_values_to_be_unique", column=col)]
    if pd.api.types.is_bool_dtype(v):
        return ex + [_e("expect_column_values_to_be_in_set", column=col,
                        value_set=sorted({bool(x) for x in v}))]
    if pd.api.types.is_numeric_dtype(v):
        ex.append(_e("expect_column_values_to_be_in_type_list", column=col,
                     type_list=NUMBER_TYPES))
        discrete = pd.api.types.is_integer_dtype(v) and (
            (is_target and task == "classification") or v.nunique() <= INT_CATEGORIES)
        if discrete:
            return ex + [_set(col, sorted(int(x) for x in v.unique()), is_target)]
        return ex + _numeric(v, col)
    if pd.api.types.is_datetime64_any_dtype(v):
        return ex
    if is_text(v) and not is_target and is_date(v):
        parsed = pd.to_datetime(v.astype(str), errors="coerce", format="ISO8601")
        share = float(parsed.notna().mean())
        kwargs = {} if share >= 1.0 else {"mostly": round(max(0.0, share - 0.02), 4)}
        return ex + [_e("expect_column_values_to_match_regex", column=col, regex=ISO_DATE,
                        **kwargs)]
    if not isinstance(s.dtype, pd.CategoricalDtype):  # GX types it CategoricalDtypeType
        ex.append(_e("expect_column_values_to_be_of_type", column=col, type_=str(s.dtype)))
    values = v.astype(str).unique()
    if len(values) <= MAX_CATEGORIES:
        ex.append(_set(col, sorted(values.tolist()), is_target))
    return ex


def _missing(s: pd.Series, col: str, strict: bool) -> dict[str, Any]:
    share = float(s.isna().mean())
    if strict and share == 0:
        return _e("expect_column_values_to_not_be_null", column=col)
    mostly = round(max(0.0, 1.0 - allowed_missing(share)), 4)
    return _e("expect_column_values_to_not_be_null", column=col, mostly=mostly)


def _set(col: str, values: list[Any], strict: bool) -> dict[str, Any]:
    kwargs = {} if strict else {"mostly": SET_MOSTLY}
    return _e("expect_column_values_to_be_in_set", column=col, value_set=values, **kwargs)


def _numeric(v: pd.Series, col: str) -> list[dict[str, Any]]:
    import numpy as np

    vals = v.to_numpy(dtype=float)
    lo, hi = float(vals.min()), float(vals.max())
    pad = (hi - lo) * RANGE_MARGIN or abs(lo) * RANGE_MARGIN or 1.0
    out = [_e("expect_column_values_to_be_between", column=col, min_value=_round(lo - pad),
              max_value=_round(hi + pad), mostly=RANGE_MOSTLY)]
    edges = np.unique(np.quantile(vals, np.linspace(0, 1, KL_BINS + 1)))
    if len(edges) < 3:
        return out  # (nearly) constant: the range says everything
    counts, _ = np.histogram(vals, bins=edges)
    weights = counts / counts.sum()
    out.append(_e("expect_column_kl_divergence_to_be_less_than", column=col,
                  partition_object={"bins": [float(b) for b in edges],
                                    "weights": [float(w) for w in weights]},
                  tail_weight_holdout=0.01, internal_weight_holdout=0.01,
                  threshold=KL_THRESHOLD))
    return out


def _round(x: float) -> float:
    return float(f"{x:.6g}")


# Image data sets (mlci.data.imageset.metadata): each image is resized to the model's size,
# so sizes only need to stay within what resizing keeps meaningful: from half the smallest
# profiled side to four times the largest (a thumbnail or a poster is another kind of data).
SIZE_SHRINK, SIZE_GROW = 2, 4
# class shares: KL divergence of the class counts from the profiled shares. A stratified
# held-out fifth sits at 0; one class of four losing two thirds of its images is 0.083.
# Error rates both ways, simulated (tests/test_imageset.py; docs/pipeline.md#image-data):
# a random set of 80 images with the profiled shares fails 4.8 % of the time (40: 28 %,
# 160: 0.1 %); a class that lost two thirds of its images passes 6-15 % of the time.
CLASS_KL = 0.05


def profile_image_suite(meta: pd.DataFrame, name: str) -> dict[str, Any]:
    """A suite over the per-image metadata table of a training image set."""
    from mlci.data.imageset import COLUMNS

    n = len(meta)
    ok = meta[meta["decodable"].astype(bool)]
    shares = meta["label"].value_counts(normalize=True).sort_index()
    classes = [_plain(c) for c in shares.index]
    ex: list[dict[str, Any]] = [
        _e("expect_table_columns_to_match_set", column_set=list(COLUMNS), exact_match=True),
        _e("expect_table_row_count_to_be_between", min_value=max(1, n // 10), max_value=n * 10),
        _e("expect_column_values_to_not_be_null", column="path"),
        _e("expect_column_values_to_be_in_set", column="decodable", value_set=[True]),
        _e("expect_column_values_to_be_in_set", column="format",
           value_set=sorted(set(ok["format"].dropna().astype(str))) or ["PNG", "JPEG", "WEBP"]),
        _e("expect_column_values_to_be_in_set", column="mode",
           value_set=sorted(set(ok["mode"].dropna().astype(str)))),
        _e("expect_column_values_to_be_in_set", column="channels",
           value_set=sorted(int(c) for c in set(ok["channels"].dropna()))),
        _e("expect_column_values_to_be_between", column="bytes", min_value=1,
           max_value=int(meta["bytes"].max()) * 10),
        _e("expect_column_values_to_be_in_set", column="label", value_set=classes),
        _e("expect_column_distinct_values_to_equal_set", column="label", value_set=classes),
        _e("expect_column_kl_divergence_to_be_less_than", column="label",
           partition_object={"values": classes, "weights": [float(w) for w in shares]},
           threshold=CLASS_KL),
        _e("expect_column_values_to_be_unique", column="sha256"),
    ]
    for side in ("width", "height"):
        v = ok[side].dropna().astype(int)
        if len(v):
            ex.append(_e("expect_column_values_to_be_between", column=side,
                         min_value=max(1, int(v.min()) // SIZE_SHRINK),
                         max_value=int(v.max()) * SIZE_GROW))
    return {"name": name, "expectations": ex,
            "meta": {"generated_by": "mlci init --profile", "kind": "images",
                     "profiled_images": n}}


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
