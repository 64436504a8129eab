"""The default preprocessing for `model.estimator`: what each raw column becomes.

Columns are sorted into kinds from the training data alone (the same rules the profiler
uses, so validation and training agree on what a column is):

- identifier: every value distinct (strings), or an ID-like name with nearly distinct values,
  or consecutive integers: excluded from the features and reported (an ID carries no
  signal that transfers to new rows, and one-hot encoding it would be as wide as the table);
- date: datetime values, or strings of which at least 95 % parse as ISO dates: expanded into
  year, month, day, day of week and days since 1970;
- categorical: strings, booleans, pandas categories and `data.categorical`: missing values
  become their own level, then one-hot (at most 30 levels, rarer ones pooled, unseen ones
  ignored at prediction time);
- numeric: median imputation with a missing-value indicator.

The fitted transformer is the first step of the registered pipeline, so the model scores raw
rows: serving, monitoring and canary send what production has, not a feature matrix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin

if TYPE_CHECKING:
    import pandas as pd

    from mlci.config import Config

ID_NAME = re.compile(r"(^|[_\W])(id|uuid|guid|key)$|^id([_\W]|$)|Id$|ID$")
DATE_SHARE = 0.95        # share of non-missing strings that must parse as dates
DATE_SAMPLE = 500        # rows parsed to decide (parsing every row of a big table is slow)
MAX_LEVELS = 30          # one-hot columns per categorical feature
MISSING_LEVEL = "__missing__"
DATE_PARTS = ("year", "month", "day", "dayofweek", "days")


@dataclass
class Plan:
    """Which raw column goes where, and the notes the report shows."""

    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        return self.numeric + self.categorical + self.dates

    def to_json(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "categorical": self.categorical, "dates": self.dates,
                "identifiers": self.identifiers, "dropped": self.dropped, "notes": self.notes}


def is_text(s: pd.Series) -> bool:
    import pandas as pd

    return (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)) and not \
        pd.api.types.is_bool_dtype(s)


def parses_as_dates(s: pd.Series) -> bool:
    """Strings that are dates: ≥ 95 % of a sample parse as ISO 8601 and are not plain numbers."""
    import pandas as pd

    v = s.dropna()
    if v.empty:
        return False
    v = v.astype(str).head(DATE_SAMPLE)
    if pd.to_numeric(v, errors="coerce").notna().mean() > 0.5:
        return False  # "2021" or "20210131" alone are numbers, not dates
    parsed = pd.to_datetime(v, errors="coerce", format="ISO8601")
    return bool(parsed.notna().mean() >= DATE_SHARE)


def is_date(s: pd.Series) -> bool:
    import pandas as pd

    return pd.api.types.is_datetime64_any_dtype(s) or (is_text(s) and parses_as_dates(s))


def is_identifier(s: pd.Series, name: str) -> bool:
    """Row keys: distinct strings, ID-named nearly distinct values, or a 0..n / 1..n counter."""
    import pandas as pd

    v = s.dropna()
    n = len(v)
    if n < 20:
        return False
    distinct = v.nunique()
    if ID_NAME.search(name) and distinct >= 0.9 * n and not pd.api.types.is_float_dtype(v):
        return True
    if is_text(v) and distinct == n and not parses_as_dates(v):
        return True
    if pd.api.types.is_integer_dtype(v) and distinct == n:
        srt = v.sort_values().to_numpy()
        return bool(srt[-1] - srt[0] == n - 1)
    return False


def plan_columns(x: pd.DataFrame, categorical: list[str] | None = None,
                 drop: list[str] | None = None) -> Plan:
    import pandas as pd

    forced = set(categorical or [])
    plan = Plan(dropped=[c for c in x.columns if c in set(drop or [])])
    for col in x.columns:
        name = str(col)
        if col in plan.dropped:
            continue
        s = x[col]
        if col in forced:
            plan.categorical.append(col)
        elif s.isna().all():
            plan.dropped.append(col)
            plan.notes.append(f"column {name!r} is empty in the training data: dropped")
        elif is_identifier(s, name):
            plan.identifiers.append(col)
            plan.notes.append(f"column {name!r} looks like an identifier (one value per row): "
                              "excluded from the features")
        elif is_date(s):
            plan.dates.append(col)
            plan.notes.append(f"column {name!r} holds dates: expanded into "
                              f"{', '.join(DATE_PARTS)}")
        elif pd.api.types.is_bool_dtype(s) or is_text(s) or \
                isinstance(s.dtype, pd.CategoricalDtype):
            plan.categorical.append(col)
        elif pd.api.types.is_numeric_dtype(s):
            plan.numeric.append(col)
        else:
            plan.dropped.append(col)
            plan.notes.append(f"column {name!r} has type {s.dtype}, which the default "
                              "preprocessing cannot encode: dropped")
    return plan


class AsCategories(BaseEstimator, TransformerMixin):
    """Any categorical column as strings, with missing values as their own level."""

    def fit(self, x, y=None):  # noqa: ANN001 - scikit-learn protocol
        return self

    def transform(self, x):  # noqa: ANN001
        import pandas as pd

        df = pd.DataFrame(x)
        return df.astype(object).where(df.notna(), MISSING_LEVEL).astype(str).to_numpy()

    def get_feature_names_out(self, input_features=None):  # noqa: ANN001
        return input_features


class DateParts(BaseEstimator, TransformerMixin):
    """Dates (datetime values or ISO strings) as numbers; unparseable values become missing."""

    def fit(self, x, y=None):  # noqa: ANN001
        import pandas as pd

        self.columns_ = list(pd.DataFrame(x).columns)
        return self

    def transform(self, x):  # noqa: ANN001
        import numpy as np
        import pandas as pd

        df = pd.DataFrame(x)
        parts = []
        for col in df.columns:
            d = pd.to_datetime(df[col], errors="coerce", format="ISO8601", utc=True)
            epoch = (d - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds() / 86400
            parts += [d.dt.year, d.dt.month, d.dt.day, d.dt.day_of_week, epoch]
        return np.column_stack([p.to_numpy(dtype=float, na_value=np.nan) for p in parts])

    def get_feature_names_out(self, input_features=None):  # noqa: ANN001
        cols = input_features if input_features is not None else self.columns_
        return [f"{c}_{p}" for c in cols for p in DATE_PARTS]


def build_transformer(plan: Plan):
    """An unfitted ColumnTransformer for the plan; dense output so any estimator accepts it."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    parts: list[tuple[str, Any, list[str]]] = []
    if plan.numeric:
        parts.append(("numeric", SimpleImputer(strategy="median", add_indicator=True),
                      plan.numeric))
    if plan.categorical:
        parts.append(("categorical", make_pipeline(
            AsCategories(),
            OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=MAX_LEVELS,
                          sparse_output=False)), plan.categorical))
    if plan.dates:
        parts.append(("dates", make_pipeline(
            DateParts(), SimpleImputer(strategy="median", keep_empty_features=True)),
            plan.dates))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0,
                             verbose_feature_names_out=False)


def with_preprocessing(estimator: Any, plan: Plan):
    from sklearn.pipeline import Pipeline

    return Pipeline([("preprocess", build_transformer(plan)), ("model", estimator)])


def pixels_to_rows(x: Any) -> Any:
    """(N, H, W, C) uint8 images as (N, H*W*C) float32 rows in 0..1: the first step of an
    image model built from `model.estimator`, so the logged model takes the uint8 tensor the
    gateway gives it (mlci.images) and scales it itself."""
    import numpy as np

    a = np.asarray(x)
    return a.reshape(len(a), -1).astype(np.float32) / np.float32(255.0)


def with_pixels(estimator: Any):
    """An estimator on flattened, scaled pixels that takes the image tensor itself."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    return Pipeline([("pixels", FunctionTransformer(pixels_to_rows)), ("model", estimator)])


class EncodedLabels(ClassifierMixin, BaseEstimator):
    """A classifier fitted on label codes 0..K-1 that answers in the original labels.

    Some estimators (xgboost's, many hand-written ones) refuse string labels or labels that
    are not 0..K-1; wrapped here, they see codes, and the logged model, the gate, the gateway
    and the report still see 'No'/'Yes'. It travels inside the pickle with this module."""

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def fit(self, x, y):  # noqa: ANN001 - scikit-learn protocol
        import numpy as np
        from sklearn.base import clone

        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        self.estimator_ = clone(self.estimator).fit(x, codes)
        return self

    def predict(self, x):  # noqa: ANN001
        import numpy as np

        return self.classes_[np.asarray(self.estimator_.predict(x)).astype(int).ravel()]

    def predict_proba(self, x):  # noqa: ANN001
        return self.estimator_.predict_proba(x)

    def __getattr__(self, name: str) -> Any:
        # feature_names_in_, n_features_in_, feature_importances_ ... of the fitted model
        if name.endswith("_") and not name.startswith("__") and "estimator_" in self.__dict__:
            return getattr(self.__dict__["estimator_"], name)
        raise AttributeError(name)


def encode_labels(estimator: Any) -> Any:
    """`estimator` made to take any labels: inside a Pipeline, its last step is wrapped."""
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        steps = list(estimator.steps)
        steps[-1] = (steps[-1][0], EncodedLabels(clone(steps[-1][1])))
        return Pipeline(steps)
    return EncodedLabels(clone(estimator))


def plan_for(cfg: Config, x: pd.DataFrame) -> Plan:
    return plan_columns(x, cfg.data.categorical, cfg.data.drop)
