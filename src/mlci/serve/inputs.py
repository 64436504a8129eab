"""What a model takes, and turning a request's instances into exactly that (or a 400).

The input schema comes from the model version itself: the MLflow signature logged with it
(column names, types, and `required: false` for a column that had missing values in
training), else scikit-learn's `feature_names_in_` / `n_features_in_`. A model *accepts
missing values* in a column when its signature marks the column optional, or when the model
scores its own logged input example with every value missing (a pipeline that imputes).

Validation happens before any model runs, so a request the model cannot take is the
client's error (HTTP 400), never a model error that would count against a canary:

- a named feature absent from an instance, a value of the wrong JSON type (a string for a
  numeric column, a number for a string column, a boolean for a number), infinity, or a
  string longer than `MAX_STRING`, is refused;
- `null` (or a `NaN` literal) is a missing value: accepted where the model takes missing
  values, refused otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlci.images import ImageSpec

MAX_INSTANCES = 1024
MAX_STRING = 1024  # characters in one string feature value

NUMBER, STRING, BOOL, DATETIME, ANY = "number", "string", "bool", "datetime", "any"
_KINDS = {"double": NUMBER, "float": NUMBER, "long": NUMBER, "integer": NUMBER,
          "string": STRING, "boolean": BOOL, "datetime": DATETIME}


MAX_LABEL = 256   # characters of a label when the model's classes are unknown


class BadInput(ValueError):
    """The request is not something the model can score (HTTP 400)."""

    reason = "bad_input"


class Mismatch(BadInput):
    """The request's shape is not the model's (other features, another width): when the
    champion takes the same request, the variant refusing it is incompatible with the traffic
    it is meant to serve, which is that variant's fault, not the client's."""


class TooManyPixels(BadInput):
    """The request's images hold more pixels than allowed (checked before decoding)."""

    reason = "too_many_pixels"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = NUMBER
    optional: bool = False  # missing values seen in training
    # the signature's type name (double, long, string, ...), for v2 metadata only
    type: str = field(default="", compare=False)


@dataclass
class InputSpec:
    """The columns a model scores, in order (None: a bare matrix of `width` numbers)."""

    columns: list[Column] | None
    width: int | None
    missing_ok: bool = False  # scores a row whose every value is missing
    image: ImageSpec | None = None  # takes one (N, H, W, C) uint8 tensor (see mlci.images)
    input_name: str | None = None   # that tensor's name in the signature, if it has one

    @property
    def names(self) -> list[str] | None:
        return [c.name for c in self.columns] if self.columns is not None else None

    @property
    def numeric(self) -> bool:
        return self.columns is None or all(c.kind in (NUMBER, ANY) for c in self.columns)

    def takes_missing(self, col: Column | None) -> bool:
        return self.missing_ok or (col is not None and col.optional)


def image_input(schema: Any) -> tuple[ImageSpec, str | None] | None:
    """The image tensor of an MLflow input schema: one `TensorSpec` of shape `(-1, H, W, C)`
    (or `(-1, H, W)`) and dtype uint8, and its name; None for any other schema."""
    from mlci.images import spec_of_shape

    if schema is None or not getattr(schema, "is_tensor_spec", lambda: False)():
        return None
    inputs = list(schema.inputs)
    if len(inputs) != 1:
        return None
    t = inputs[0]
    shape, dtype = getattr(t, "shape", None), getattr(t, "type", None)
    if shape is None or str(dtype) != "uint8" or not shape or shape[0] != -1:
        return None
    img = spec_of_shape(shape)
    return (img, getattr(t, "name", None) or None) if img is not None else None


def spec_of(model: Any, schema: Any = None) -> InputSpec:
    """The spec from an MLflow input schema (a column-based `Schema`, or an image tensor) or
    the estimator."""
    image = image_input(schema)
    if image is not None:
        return InputSpec(None, None, image=image[0], input_name=image[1])
    cols = None
    if schema is not None and not getattr(schema, "is_tensor_spec", lambda: True)():
        named = [c for c in schema.inputs if getattr(c, "name", None)]
        if named and len(named) == len(schema.inputs):
            types = [str(getattr(c.type, "name", c.type)) for c in named]
            cols = [Column(str(c.name), _KINDS.get(t, ANY), not getattr(c, "required", True), t)
                    for c, t in zip(named, types, strict=True)]
    if cols is None:
        feats = getattr(model, "feature_names_in_", None)
        if feats is not None:
            cols = [Column(str(f)) for f in feats]
    width = len(cols) if cols is not None else getattr(model, "n_features_in_", None)
    return InputSpec(cols, width)


# ------------------------------------------------------------------ instances


def is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def finite(v: int | float) -> bool:
    """Whether a JSON number is a finite float: a 400-digit integer parses in Python but is
    beyond any float (math.isfinite raises OverflowError on it)."""
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _value(v: Any, col: Column | None, spec: InputSpec, where: str) -> Any:
    """One checked value: the JSON value as the model gets it (None for missing)."""
    if is_missing(v):
        if spec.takes_missing(col):
            return None
        raise BadInput(f"{where} is missing (null or NaN) and the model was trained "
                       "without missing values there")
    kind = col.kind if col is not None else NUMBER
    if kind in (NUMBER, ANY) and isinstance(v, (int, float)) and not isinstance(v, bool):
        if not finite(v):
            raise BadInput(f"{where} is infinite or beyond the range of a float")
        return v
    if kind in (STRING, DATETIME, ANY) and isinstance(v, str):
        if len(v) > MAX_STRING:
            raise BadInput(f"{where} is a string of {len(v)} characters (at most {MAX_STRING})")
        return v
    if kind in (BOOL, ANY) and isinstance(v, bool):
        return v
    want = {NUMBER: "a number", STRING: "a string", DATETIME: "a date string",
            BOOL: "true or false", ANY: "a number, string or boolean"}[kind]
    raise BadInput(f"{where} must be {want}, got {type(v).__name__}")


def _flat(x: list[Any]) -> list[Any]:
    if x and isinstance(x[0], list):  # an image as rows of pixels
        return [v for row in x for v in (row if isinstance(row, list) else [row])]
    return x


def _plain_numbers(x: Any, names: list[str] | None, spec: InputSpec) -> list[Any] | None:
    """The row when it is nothing but finite numbers where numbers are due (the common
    case, checked in a few microseconds); None sends it through the full check, which
    also words the error."""
    if not spec.numeric:
        return None
    if isinstance(x, dict):
        if names is None:
            return None
        try:
            vals = [x[c] for c in names]
        except KeyError:
            return None
    elif isinstance(x, list):
        vals = x
        if spec.width is not None and len(vals) != spec.width:
            return None
    else:
        return None
    if all(type(v) is float or type(v) is int for v in vals) and all(map(finite, vals)):
        return vals
    return None


def rows_of(items: Any, spec: InputSpec) -> list[list[Any]]:
    """Checked rows (lists in the model's column order) from a list of instances, each a
    list of values (numeric models) or an object keyed by feature name."""
    if not isinstance(items, list) or not items:
        raise BadInput("'instances' must be a non-empty list")
    if len(items) > MAX_INSTANCES:
        raise BadInput(f"at most {MAX_INSTANCES} instances per request, got {len(items)}")
    cols = spec.columns
    names = spec.names
    rows = []
    for i, x in enumerate(items):
        fast = _plain_numbers(x, names, spec)
        if fast is not None:
            rows.append(fast)
        elif isinstance(x, dict):
            if cols is None:
                raise Mismatch("this model has no feature names; send lists of numbers")
            missing = next((c.name for c in cols if c.name not in x), None)
            if missing is not None:
                raise Mismatch(f"instance {i} lacks feature {missing!r}")
            rows.append([_value(x[c.name], c, spec, f"instance {i}: feature {c.name!r}")
                         for c in cols])
        elif isinstance(x, list):
            vals = _flat(x)
            if spec.width is not None and len(vals) != spec.width:
                raise Mismatch(f"instance {i} has {len(vals)} values; the model takes "
                               f"{spec.width}")
            if not spec.numeric:
                raise Mismatch("this model takes named features of several types; send "
                               "objects keyed by feature name")
            rows.append([_value(v, cols[j] if cols else None, spec,
                                f"instance {i}: value {j}") for j, v in enumerate(vals)])
        else:
            raise BadInput(f"instance {i} must be a list of numbers or an object")
    return rows


def matrix(rows: list[list[Any]], spec: InputSpec) -> Any:
    """What the model gets: a float ndarray when every column is numeric (missing = NaN),
    else a DataFrame with the model's column names and types."""
    import numpy as np

    filled = [[np.nan if v is None else v for v in r] for r in rows]  # as read_csv has it
    if spec.numeric:
        return np.array(filled, dtype=float)
    import pandas as pd

    df = pd.DataFrame(filled, columns=spec.names, dtype=object)
    for c in spec.columns or []:
        if c.kind == NUMBER:
            df[c.name] = pd.to_numeric(df[c.name], errors="raise").astype(float)
        elif c.kind == DATETIME:
            try:
                df[c.name] = pd.to_datetime(df[c.name], errors="raise")
            except (ValueError, TypeError):
                raise BadInput(f"feature {c.name!r} holds a value that is not a date") from None
        elif c.kind == BOOL and not df[c.name].isna().any():
            df[c.name] = df[c.name].astype(bool)
    return df


# ------------------------------------------------------------------ labels


def labels_of(label: Any, n: int, classes: list[Any] | None, numeric: bool) -> list[Any]:
    """The checked labels for `n` predictions: one of the model's classes each (compared as
    text, so "3" names class 3 and is stored as 3); finite numbers when the model predicts
    numbers and has no classes (a regressor); short strings or numbers otherwise."""
    labels = label if isinstance(label, list) else [label]
    if len(labels) != n:
        raise BadInput(f"{len(labels)} labels for {n} predictions")
    if classes is not None:
        by_text = {str(c): c for c in classes}
        out = []
        for y in labels:
            if isinstance(y, (dict, list)) or is_missing(y) or str(y) not in by_text:
                shown = repr(y) if len(repr(y)) <= 40 else repr(y)[:40] + "..."
                raise BadInput(f"label {shown} is not one of the model's classes")
            out.append(by_text[str(y)])
        return out
    for y in labels:
        if isinstance(y, (int, float)) and not isinstance(y, bool) and finite(y):
            continue
        if not numeric and isinstance(y, str) and len(y) <= MAX_LABEL:
            continue
        raise BadInput("a label must be a finite number" if numeric else
                       f"a label must be a number or a string of at most {MAX_LABEL} "
                       "characters")
    return labels
