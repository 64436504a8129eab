"""The expectations `mlci init --profile` writes, evaluated in vectorised pandas and numpy.

Great Expectations' pandas engine copies the whole frame for every metric of every column
expectation (`df[df[column].notnull()]`) and walks a metric graph per suite; on 1M rows × 20
columns that is most of its time. Here each column's null mask and non-null values are
computed once and shared by all expectations on that column, and each check runs the same
pandas/numpy operation as GX's metric for it (`isin`, `str.contains`, `duplicated`,
`np.histogram`, ...), so the verdicts and the numbers are GX's own.

`FrameChecks.evaluate` returns what GX's `Expectation._validate` returns for
`result_format="SUMMARY"` (`{"success", "result"}`, values not yet made JSON), or None when the
expectation is left to GX: an unknown type, a keyword it does not cover (`row_condition`,
`catch_exceptions`, `result_format`, suite parameters, ...), a column GX would find by another
spelling, or any input on which GX's own metric would raise (GX then reports its error).
The caller wraps the results in GX's result classes, so the JSON and the Data Docs come from GX.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

# GX's partial_unexpected_count for "SUMMARY" (expectation_configuration.parse_result_format)
PARTIAL = 20
MAP_KEYS = {"column", "mostly"}


class Unsupported(Exception):
    """Leave this expectation to Great Expectations."""


class _Column:
    def __init__(self, s: pd.Series) -> None:
        self.s = s
        self.null = s.isnull()
        self.null_count = int(np.count_nonzero(self.null))
        self._nonnull: pd.Series | None = None

    @property
    def nonnull(self) -> pd.Series:
        """GX's domain for column map metrics: the rows where the column is not null."""
        if self._nonnull is None:
            self._nonnull = self.s if self.null_count == 0 else self.s[~self.null]
        return self._nonnull


class FrameChecks:
    """One frame; columns are prepared on first use and reused by later expectations."""

    def __init__(self, df: pd.DataFrame) -> None:
        self.df = df
        self.rows = int(df.shape[0])
        # GX names unexpected rows by the index unless it is named (then by dicts of columns)
        self.supported = bool(df.columns.is_unique) and all(n is None for n in df.index.names)
        self._columns: dict[str, _Column] = {}
        self._spellings: _Spellings | None = None

    def evaluate(self, kind: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        spec = CHECKS.get(kind)
        if spec is None or not self.supported:
            return None
        keys, check = spec
        kw = {k: v for k, v in kwargs.items() if k != "batch_id"}
        if set(kw) - keys or any(_is_parameter(v) for v in kw.values()):
            return None
        try:
            return check(self, kw)
        except Unsupported:
            return None
        except Exception:  # GX's metric raises here too; GX reports it in its own words
            return None

    def column(self, name: Any) -> _Column:
        if name not in self._columns:
            self._columns[name] = _Column(self.df[self._label(name)])
        return self._columns[name]

    def _label(self, name: Any) -> str:
        # GX matches a column name case-insensitively and by quoted or bracketed spellings
        # (metrics.util.get_dbms_compatible_column_names), while the type checks look the name
        # up exactly: only an unambiguous exact name is evaluated here.
        if not isinstance(name, str) or not name:
            raise Unsupported
        if self._spellings is None:
            self._spellings = _Spellings(list(self.df.columns))
        if not self._spellings.unambiguous(name):
            raise Unsupported
        return name


class _Spellings:
    """The frame's labels by the spellings GX would match them under, built once per frame
    (a wide frame has every column looked up: comparing with every label each time is
    quadratic)."""

    def __init__(self, labels: list[Any]) -> None:
        self.plain = all(isinstance(c, str) for c in labels)
        self.labels = set(labels) if self.plain else set()
        self.folded: dict[str, list[str]] = {}
        self.inner: dict[str, list[str]] = {}  # `name` in backticks, by the name folded
        for c in labels if self.plain else ():
            cf = c.casefold()
            self.folded.setdefault(cf, []).append(c)
            if len(c) >= 2 and c[0] == c[-1] == "`":
                self.inner.setdefault(cf[1:-1], []).append(c)

    def unambiguous(self, name: str) -> bool:
        """`name` is a label, and no other label is one of its spellings."""
        if name not in self.labels:
            return False
        folded = name.casefold()
        spellings = {folded, folded.strip('"'), folded.strip("[]"), folded.strip("`")}
        others = [c for sp in spellings for c in self.folded.get(sp, ())]
        others += self.inner.get(folded, ())
        return all(c == name for c in others)


def _is_parameter(v: Any) -> bool:
    return isinstance(v, dict) and "$PARAMETER" in v


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _mostly(kw: dict[str, Any]) -> float:
    mostly = kw.get("mostly", 1)
    if not _number(mostly):
        raise Unsupported
    return mostly


# --- the SUMMARY result of a column map expectation (expectation._format_map_output) ---------

def _map_output(success: bool, element_count: int, nonnull_count: int | None,
                unexpected_count: int, values: list[Any], index: list[Any]) -> dict[str, Any]:
    missing_count = None if nonnull_count is None else element_count - nonnull_count
    missing_percent = pct_total = pct_nonmissing = None
    if element_count > 0:
        pct_total = unexpected_count / element_count * 100
        if missing_count is not None:
            missing_percent = missing_count / element_count * 100
            if nonnull_count is not None and nonnull_count > 0:
                pct_nonmissing = unexpected_count / nonnull_count * 100
        else:
            pct_nonmissing = pct_total
    result: dict[str, Any] = {
        "element_count": element_count,
        "unexpected_count": unexpected_count,
        "unexpected_percent": pct_nonmissing,
        "partial_unexpected_list": values[:PARTIAL],
    }
    if missing_count is not None:
        result["missing_count"] = missing_count
        result["missing_percent"] = missing_percent
        result["unexpected_percent_total"] = pct_total
        result["unexpected_percent_nonmissing"] = pct_nonmissing
    try:
        # GX's ordering: most common first, ties by value; NaN floats are distinct objects
        # there too, and values that cannot be ordered leave the counts out
        result["partial_unexpected_counts"] = [
            {"value": key, "count": value}
            for key, value in sorted(Counter(values).most_common(PARTIAL),
                                     key=lambda x: (-x[1], x[0]))]
    except TypeError:
        pass
    result["partial_unexpected_index_list"] = index[:PARTIAL]
    return {"success": success, "result": result}


def _unexpected(domain: pd.Series, mask: Any) -> tuple[int, list[Any], list[Any]]:
    """Count of flagged rows, and the first values and index labels as GX lists them."""
    flags = np.asarray(mask)
    if flags.size == 0 and len(domain) == 0:
        flags = np.zeros(0, dtype=bool)  # a map over no values infers no dtype
    if flags.dtype != np.bool_ or flags.shape != (len(domain),):
        raise Unsupported  # a nullable boolean result: GX's `== True` filter is not this
    count = int(np.count_nonzero(flags))
    if count == 0:
        return 0, [], []  # the common case on good data: nothing to pick out
    pos = np.flatnonzero(flags)[:PARTIAL]
    picked = domain.iloc[pos]
    values = list(picked)
    if values and isinstance(values[0], dict):
        raise Unsupported  # GX turns dict values into tuples before counting them
    return count, values, list(picked.index)


def _column_map(fc: FrameChecks, kw: dict[str, Any],
                condition: Callable[[pd.Series], Any]) -> dict[str, Any]:
    """A ColumnMapExpectation whose metric skips nulls (ColumnMapExpectation._validate)."""
    mostly = _mostly(kw)
    col = fc.column(kw["column"])
    domain = col.nonnull
    count, values, index = _unexpected(domain, ~condition(domain))
    total = fc.rows
    nonnull = total - col.null_count
    if total == 0 or nonnull == 0:
        success = True  # vacuously, as GX
    else:
        success = (float(nonnull) - float(count)) / float(nonnull) >= mostly
    return _map_output(success, total, nonnull, count, values, index)


def _not_null(fc: FrameChecks, kw: dict[str, Any]) -> dict[str, Any]:
    # ExpectColumnValuesToNotBeNull._validate: nulls are the unexpected rows, of all rows
    mostly = _mostly(kw)
    col = fc.column(kw["column"])
    count, values, index = _unexpected(col.s, col.null)
    total = fc.rows
    success = True if total == 0 else (total - count) / total >= mostly
    return _map_output(success, total, None, count, values, index)


def _in_set(fc: FrameChecks, kw: dict[str, Any]) -> dict[str, Any]:
    value_set = kw.get("value_set")
    if not isinstance(value_set, list):
        raise Unsupported
    return _column_map(fc, kw, lambda s: s.isin(value_set))


def _unique(fc: FrameChecks, kw: dict[str, Any]) -> dict[str, Any]:
    return _column_map(fc, kw, lambda s: ~s.duplicated(keep=False))


def _match_regex(fc: FrameChecks, kw: dict[str, Any]) -> dict[str, Any]:
    regex = kw.get("regex")
    if not isinstance(regex, str):
        raise Unsupported

    def condition(s: pd.Series) -> Any:
        with warnings.catch_warnings():  # "has match groups": only the match matters here
            warnings.simplefilter("ignore", UserWarning)
            return s.astype(str).str.contains(regex)

    return _column_map(fc, kw, condition)


def _between(fc: FrameChecks, kw: dict[str, Any]) -> dict[str, Any]:
    lo, hi = kw.get("min_value"), kw.get("max_value")
    strict_min, strict_max = kw.get("strict_min", False), kw.get("strict_max", False)
    if not all(v is None or _number(v) for v in (lo, hi)) or (lo is None and hi is None):
        raise Unsupported  # dates, strings and missing bounds: GX parses or raises
    if not (isinstance(strict_min, bool) and isinstance(strict_max, bool)):
        raise Unsupported
    if lo is not None and hi is not None and lo > hi:
        raise Unsupported  # GX's metric raises

    def condition(s: pd.Series) -> Any:
        # ColumnValuesBetween._pandas: comparisons on int64/float64, value by value otherwise
        if s.dtype in [int, float]:
            if lo is None:
                return s < hi if strict_max else s <= hi
            if hi is None:
                return lo < s if strict_min else lo <= s
            return ((lo < s) if strict_min else (lo <= s)) & ((s < hi) if strict_max else (s <= hi))
        return s.map(lambda v: _is_between(v, lo, hi, strict_min, strict_max))

    return _column_map(fc, kw, condition)


def _is_between(val: Any, lo: Any, hi: Any, strict_min: bool, strict_max: bool) -> Any:
    # ColumnValuesBetween._pandas.is_between, for numeric bounds
    if isinstance(val, str):
        raise Unsupported  # GX raises: text against numeric bounds
    if lo is not None and hi is not None:
        if strict_min and strict_max:
            return (val > lo) and (val < hi)
        if strict_min:
            return (val > lo) and (val <= hi)
        if strict_max:
            return (val >= lo) and (val < hi)
        return (val >= lo) and (val <= hi)
    if lo is None:
        return val < hi if strict_max else val <= hi
    return val > lo if strict_min else val >= lo


# --- types (ExpectColumnValuesToBeInTypeList / ...OfType and their map metrics) -------------

def _native_types(name: str) -> tuple[type, ...] | None:
    # great_expectations.expectations.type_comparison.native_type_type_map
    native: dict[str, tuple[type, ...]] = {
        "none": (type(None),), "bool": (bool,), "int": (int,), "long": (int,),
        "float": (float,), "bytes": (bytes,), "complex": (complex,), "str": (str,),
        "string_types": (str,), "list": (list,), "dict": (dict,)}
    return native.get(name.lower())


def _type_attr(module: Any, name: str) -> Any:
    """`module.<name>` when it is a class, else None."""
    t = getattr(module, name, None)
    return t if isinstance(t, type) else None


def _pandas_type(name: str) -> list[Any]:
    return [t for t in (_type_attr(pd, name), _type_attr(_pandas_dtypes(), name))
            if t is not None]


def _pandas_dtypes() -> Any:
    import importlib

    return importlib.import_module("pandas.core.dtypes.dtypes")


def _named_types(name: str) -> list[Any]:
    """The classes a type name stands for: numpy's scalar type, else pandas', plus Python's."""
    comp: list[Any] = []
    try:
        comp.append(np.dtype(name).type)
    except TypeError:
        comp += _pandas_type(name)
    return comp + list(_native_types(name) or ())


def _metric_types(names: list[str]) -> tuple[Any, ...]:
    """The types the map metric tests every value against with isinstance."""
    comp = [t for name in names for t in _named_types(name)]
    if not comp:
        raise Unsupported  # GX's metric raises
    return tuple(comp)


def _dtype_types(names: list[str]) -> list[Any]:
    """What ExpectColumnValuesToBeInTypeList compares a column's dtype with (`in`)."""
    comp: list[Any] = []
    for name in names:
        try:
            comp.append(np.dtype(name).type)
            comp.append(np.dtype(name))
        except TypeError:
            t = _type_attr(pd, name)
            if t is not None:
                comp.append(t)
                try:
                    if isinstance(t(), pd.api.extensions.ExtensionDtype):
                        comp.append(t())
                except TypeError:
                    pass
            t = _type_attr(_pandas_dtypes(), name)
            if t is not None:
                comp.append(t)
        comp += _native_types(name) or ()
    return comp


def _column_dtype(fc: FrameChecks, name: str) -> Any:
    return fc.column(name).s.dtype  # the same lookup rules as the other checks


def _isinstance_map(comp: tuple[Any, ...]) -> Callable[[pd.Series], Any]:
    return lambda s: s.map(lambda x: isinstance(x, comp))


def _in_type_list(fc: FrameChecks, kw: dict[str, Any]) -> dict[str, Any]:
    expected = kw.get("type_list")
    if expected is not None and not (isinstance(expected, list)
                                     and all(isinstance(t, str) for t in expected)):
        raise Unsupported
    actual = _column_dtype(fc, kw["column"])
    if actual.type.__name__ == "object_" and expected is not None:
        return _column_map(fc, kw, _isinstance_map(_metric_types(expected)))
    success = True if expected is None else actual in _dtype_types(expected)
    return {"success": success, "result": {"observed_value": actual.type.__name__}}


def _of_type(fc: FrameChecks, kw: dict[str, Any]) -> dict[str, Any]:
    expected = kw.get("type_")
    if expected is not None and not isinstance(expected, str):
        raise Unsupported
    actual = _column_dtype(fc, kw["column"])
    if actual.type.__name__ == "object_" and expected not in ("object", "object_", "O", None):
        return _column_map(fc, kw, _isinstance_map(_metric_types([expected])))
    success = True if expected is None else actual.type in _named_types(expected)
    return {"success": success, "result": {"observed_value": actual.type.__name__}}


# --- table expectations -----------------------------------------------------------------------

def _columns_match_set(fc: FrameChecks, kw: dict[str, Any]) -> dict[str, Any]:
    # ExpectTableColumnsToMatchSet._validate and _validate_result (pandas)
    column_set, exact = kw.get("column_set"), kw.get("exact_match", True)
    if not (column_set is None or isinstance(column_set, (list, set))) or not (
            exact is None or isinstance(exact, bool)):
        raise Unsupported
    expected = set(column_set) if column_set is not None else set()
    actual = set(fc.df.columns)
    extra, missing = actual - expected, expected - actual
    observed = sorted(str(c) for c in actual)
    if not extra and not missing:
        return {"success": True, "result": {"observed_value": observed}}
    mismatched: dict[str, Any] = {}
    if extra:
        mismatched["unexpected"] = sorted(str(c) for c in extra)
    if missing:
        mismatched["missing"] = sorted(str(c) for c in missing)
    success = False if exact else not missing
    return {"success": success,
            "result": {"observed_value": observed, "details": {"mismatched": mismatched}}}


def _row_count_between(fc: FrameChecks, kw: dict[str, Any]) -> dict[str, Any]:
    # BatchExpectation._validate_metric_value_between on table.row_count
    lo, hi = kw.get("min_value"), kw.get("max_value")
    strict_min, strict_max = kw.get("strict_min", False), kw.get("strict_max", False)
    if not all(v is None or _number(v) for v in (lo, hi)):
        raise Unsupported  # datetimes: GX parses
    if not (isinstance(strict_min, bool) and isinstance(strict_max, bool)):
        raise Unsupported
    n = fc.rows
    above = True if lo is None else (n > lo if strict_min else n >= lo)
    below = True if hi is None else (n < hi if strict_max else n <= hi)
    return {"success": bool(above and below), "result": {"observed_value": n}}


# --- KL divergence against a continuous partition with finite ends -------------------------

def _continuous_partition(po: dict[str, Any]) -> bool:
    # execution_engine.util.is_valid_continuous_partition_object
    if "weights" not in po or "bins" not in po:
        return False
    if "tail_weights" in po:
        if len(po["tail_weights"]) != 2:
            return False
        comb = po["tail_weights"] + po["weights"]
    else:
        comb = po["weights"]
    return bool(len(po["bins"]) == len(po["weights"]) + 1
                and np.all(np.diff(po["bins"]) > 0) and np.allclose(np.sum(comb), 1.0))


def _kl_divergence(fc: FrameChecks, kw: dict[str, Any]) -> dict[str, Any]:
    from scipy import stats

    po = kw.get("partition_object")
    threshold = kw.get("threshold")
    tail = kw.get("tail_weight_holdout", 0)
    internal = kw.get("internal_weight_holdout", 0)
    # a categorical or missing partition, or one GX rejects, goes to GX
    if not isinstance(po, dict) or "values" in po or not _continuous_partition(po):
        raise Unsupported
    if kw.get("bucketize_data", True) is not True:
        raise Unsupported
    if threshold is not None and (not isinstance(threshold, (int, float)) or threshold < 0):
        raise Unsupported
    for holdout in (tail, internal):
        if not isinstance(holdout, (int, float)) or holdout < 0 or holdout > 1:
            raise Unsupported
    if tail != 0 and "tail_weights" in po:
        raise Unsupported
    bins = po["bins"]
    if bins[0] == -np.inf or bins[-1] == np.inf:
        raise Unsupported  # the infinite-end branches of GX's _validate

    col = fc.column(kw["column"])
    nonnull_count = fc.rows - col.null_count
    hist = np.array(list(np.histogram(col.nonnull, bins, density=False)[0]))
    below = int(np.count_nonzero(col.s < bins[0]))
    above = int(np.count_nonzero(bins[-1] < col.s))

    # ExpectColumnKLDivergenceToBeLessThan._validate, continuous data, finite partition ends
    observed_weights = hist / nonnull_count
    expected_weights = np.array(po["weights"]) * (1 - tail - internal)
    if internal > 0:
        zero_count = len(expected_weights) - np.count_nonzero(expected_weights)
        if zero_count > 0:
            expected_weights[expected_weights == 0] = internal / zero_count
    if "tail_weights" in po:
        tail_weights = po["tail_weights"]
        comb_expected = np.concatenate(([tail_weights[0]], expected_weights, [tail_weights[1]]))
        expected_tail = np.array(tail_weights)
    else:
        comb_expected = np.concatenate(([tail / 2], expected_weights, [tail / 2]))
        expected_tail = np.concatenate(([tail / 2], [tail / 2]))
    comb_observed = np.concatenate(([below / nonnull_count], observed_weights,
                                    [above / nonnull_count]))
    observed_tail = np.concatenate(([below], [above])) / nonnull_count
    kl = stats.entropy(comb_observed, comb_expected)
    observed_value = None if np.isinf(kl) or np.isnan(kl) else kl
    success = True if threshold is None else bool(kl <= threshold)
    return {"success": success, "result": {
        "observed_value": observed_value,
        "details": {
            "observed_partition": {"bins": bins, "weights": observed_weights.tolist(),
                                   "tail_weights": observed_tail.tolist()},
            "expected_partition": {"bins": bins, "weights": expected_weights.tolist(),
                                   "tail_weights": expected_tail.tolist()},
        },
    }}


CHECKS: dict[str, tuple[set[str], Callable[[FrameChecks, dict[str, Any]], dict[str, Any]]]] = {
    "expect_table_columns_to_match_set": ({"column_set", "exact_match"}, _columns_match_set),
    "expect_table_row_count_to_be_between": (
        {"min_value", "max_value", "strict_min", "strict_max"}, _row_count_between),
    "expect_column_values_to_not_be_null": (MAP_KEYS, _not_null),
    "expect_column_values_to_be_unique": (MAP_KEYS, _unique),
    "expect_column_values_to_be_in_set": (MAP_KEYS | {"value_set"}, _in_set),
    "expect_column_values_to_be_in_type_list": (MAP_KEYS | {"type_list"}, _in_type_list),
    "expect_column_values_to_be_of_type": (MAP_KEYS | {"type_"}, _of_type),
    "expect_column_values_to_match_regex": (MAP_KEYS | {"regex"}, _match_regex),
    "expect_column_values_to_be_between": (
        MAP_KEYS | {"min_value", "max_value", "strict_min", "strict_max"}, _between),
    "expect_column_kl_divergence_to_be_less_than": (
        {"column", "partition_object", "threshold", "tail_weight_holdout",
         "internal_weight_holdout", "bucketize_data"}, _kl_divergence),
}
SUPPORTED = frozenset(CHECKS)

