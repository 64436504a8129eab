"""Read the prediction log (`mlci.predlog/2`, or `/1`) as columns, fast for a million rows.

When every request selected is one instance with its inputs packed at the reference's width
and one dtype (what a gateway serving one model writes: `mlci.serve.predlog.pack`; one
aggregate query checks it), only the bytes, version, outputs, label and key of each request
are fetched, and each chunk's inputs become one array through `numpy.frombuffer` over the
joined bytes. Otherwise the log is read in chunks of every column: a chunk of packed requests
(several instances each allowed) is still one array; a chunk of `/1` rows whose inputs are
JSON in the form the gateway wrote for one instance (a list holding one list of exactly one
float per feature, compact JSON) has its numbers parsed by pandas' C CSV parser in one call;
any other chunk (object instances, strings, nulls, NaN, ragged rows, packed and JSON requests
mixed) is read request by request, as before. Predictions and labels take one `json.loads`
per distinct text in a chunk (a classifier's outputs repeat a few texts). When every chunk
took a fast path the frame is built from the arrays; otherwise all rows go through the same
pandas constructor as before, so values and column types are exactly those of reading the log
row by row (`tests/test_predlog_read.py` checks it against that reader).
"""

from __future__ import annotations

import gc
import io
import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.serve.predlog import has_arrays, instances

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

CHUNK_ROWS = 100_000  # requests per chunk: bounds the rows and text held at once
DTYPES = ("<f8", "<i8")  # what `predlog.pack` writes

_NOT_NUMERIC = str.maketrans("", "", "0123456789.eE+-,[]\n")
_LONG_DIGITS = re.compile(r"[\[,]-?\d{19}")  # a number with 19 digits before any point


@dataclass
class LoggedColumns:
    """The answered predictions of a log, one entry per instance, in log order."""

    features: pd.DataFrame
    labels: pd.Series        # the label sent to /feedback for the instance, or None
    predictions: pd.Series
    versions: pd.Series      # the model version that answered, as text
    keys: pd.Series          # the routing key's hash (the randomised unit), else the request


_KEY = ("CASE WHEN IFNULL(p.route_key, '') = '' THEN 'request:' || IFNULL(p.request_id, 'None') "
        "ELSE p.route_key END")
_FROM = "FROM predictions p LEFT JOIN feedback f ON f.request_id = p.request_id"


def _where(since: float | None, variant: str | None) -> tuple[str, list[Any]]:
    where, args = "p.error IS NULL", list[Any]()
    if since is not None:
        where += " AND p.ts >= ?"
        args.append(since)
    if variant:
        where += " AND p.variant = ?"
        args.append(variant)
    return where, args


def _query(con: sqlite3.Connection, where: str, plain: bool) -> str:
    """One row per answered request: (packed inputs, their dtype, instance count,) version
    as text, outputs, label, the randomised unit (and the JSON inputs). SQLite builds the
    text columns, so no Python code runs per request for them. `plain`: every request is
    one packed instance (see `_plain_dtype`), so only the bytes are needed of its inputs."""
    rest = f"IFNULL(CAST(p.version AS TEXT), 'None'), p.outputs, f.label, {_KEY}"
    if plain:
        cols = f"p.inputs_array, {rest}"
    else:
        packed = "p.inputs_array, p.inputs_dtype" if has_arrays(con) else "NULL, NULL"
        cols = f"{packed}, p.n, {rest}, p.inputs"
    return f"SELECT {cols} {_FROM} WHERE {where} ORDER BY p.ts"


def _plain_dtype(con: sqlite3.Connection, where: str, args: list[Any], width: int
                 ) -> str | None:
    """The dtype when every request selected is one instance packed as `width` values of
    that one dtype (what a gateway serving one model writes), else None."""
    if width == 0 or not has_arrays(con):
        return None
    count, lo, hi, odd = con.execute(
        "SELECT COUNT(*), MIN(p.inputs_dtype), MAX(p.inputs_dtype), SUM(p.inputs_array IS "
        f"NULL OR p.n IS NOT 1 OR length(p.inputs_array) IS NOT ?) FROM predictions p "
        f"WHERE {where}", [8 * width, *args]).fetchone()
    return lo if count and lo == hi and lo in DTYPES and not odd else None


def _packed_block(arrays: tuple[bytes | None, ...], dtypes: tuple[str | None, ...],
                  counts: tuple[int, ...], width: int) -> np.ndarray | None:
    """The chunk's instances as one (instances x width) array when every request has its
    inputs packed, all of one dtype and `width` values per instance; else None."""
    import numpy as np

    if width == 0 or None in arrays or len(set(dtypes)) != 1 or dtypes[0] not in DTYPES:
        return None
    sizes = np.fromiter(map(len, arrays), dtype=np.int64, count=len(arrays))  # type: ignore[arg-type]
    if not np.array_equal(sizes, np.asarray(counts, dtype=np.int64) * (8 * width)):
        return None  # another width (a model with other features answered these)
    return np.frombuffer(b"".join(arrays), dtype=dtypes[0]).reshape(-1, width)  # type: ignore[arg-type]


def _float_block(inputs: tuple[str | None, ...], width: int) -> np.ndarray | None:
    """A `/1` chunk's instances as a (requests x width) float array when every request is
    one instance of exactly `width` floats in compact JSON (what the gateway logged for a
    single instance), else None."""
    import numpy as np
    import pandas as pd

    n = len(inputs)
    if width == 0 or None in inputs:
        return None
    text = "\n".join(inputs)  # type: ignore[arg-type]
    lines = "\n" + text + "\n"
    if (text.translate(_NOT_NUMERIC) or text.count("[") != 2 * n or text.count("]") != 2 * n
            or lines.count("\n[[") != n or lines.count("]]\n") != n):
        return None  # not only numbers, or not one instance per request
    if _LONG_DIGITS.search(text):
        return None  # an integer that may be beyond int64 (a double's repr has <= 17 digits)
    try:  # pandas' C parser: the same correctly rounded doubles as json.loads, ~4x faster
        frame = pd.read_csv(io.StringIO(text.replace("[", "").replace("]", "")),
                            header=None, engine="c")
    except (ValueError, pd.errors.ParserError):
        return None  # a request with more values than the first one
    # integers only in a column make it int64 for json.loads too, but keep that case exact
    # by the row reader; NaN here is a missing value (there are no NaN tokens)
    if frame.shape != (n, width) or any(t.kind != "f" for t in frame.dtypes):
        return None
    values = frame.to_numpy()
    return None if np.isnan(values).any() else values


def _rows(arrays: tuple[bytes | None, ...], dtypes: tuple[str | None, ...],
          counts: tuple[int, ...], inputs: tuple[str | None, ...], features: list[str]
          ) -> tuple[list[Any], list[int]]:
    """Request by request: each instance a list in feature order."""
    rows: list[Any] = []
    sizes = []
    for packed, dtype, n, text in zip(arrays, dtypes, counts, inputs, strict=True):
        xs = instances(text, packed, dtype, n) or []
        sizes.append(len(xs))
        rows.extend(x if isinstance(x, list) else [x.get(f) for f in features] for x in xs)
    return rows, sizes


def _each(texts: tuple[str | None, ...], empty: str, pick: Any) -> np.ndarray:
    """`pick(json.loads(text))` of every text (`empty` for NULL), one parse per distinct
    text, as an object array."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(np.fromiter(texts, dtype=object, count=len(texts)))
    parsed = json.loads("[" + ",".join([*uniques, empty]) + "]")
    values = np.empty(len(parsed), dtype=object)
    for i, v in enumerate(parsed):  # one per distinct text; element-wise keeps lists whole
        values[i] = pick(v)
    return values[codes]  # NULL's code -1 takes `empty`, the last


def _first(ys: Any) -> Any:
    return ys[0] if ys else None


def _first_label(ls: Any) -> Any:
    return (ls[0] if ls else None) if isinstance(ls, list) else ls


def _align(counts: list[int] | tuple[int, ...], single: bool, outputs: tuple[str | None, ...],
           labels: tuple[str | None, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Each instance's prediction and label, as the row reader did."""
    import numpy as np

    if single:
        return _each(outputs, "[]", _first), _each(labels, "null", _first_label)
    preds: list[Any] = []
    labs: list[Any] = []
    for n, ys, ls in zip(counts, _each(outputs, "[]", _same), _each(labels, "null", _same),
                         strict=True):
        if not isinstance(ls, list):  # one instance labelled with a scalar, as /feedback allows
            ls = [ls]
        for i in range(n):
            preds.append(ys[i] if i < len(ys) else None)
            labs.append(ls[i] if i < len(ls) else None)
    return (np.fromiter(preds, dtype=object, count=len(preds)),
            np.fromiter(labs, dtype=object, count=len(labs)))


def _same(v: Any) -> Any:
    return v


def _objects(values: tuple[Any, ...], counts: list[int] | tuple[int, ...], single: bool
             ) -> np.ndarray:
    import numpy as np

    a = np.fromiter(values, dtype=object, count=len(values))
    return a if single else np.repeat(a, counts)


def _plain_chunk(chunk: list[tuple[Any, ...]], dtype: str, width: int
                 ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """A chunk of one packed instance per request: the instances, then each instance's
    prediction, label, version and key."""
    import numpy as np

    arrays, versions, outputs, labels, keys = zip(*chunk, strict=True)
    block = np.frombuffer(b"".join(arrays), dtype=dtype).reshape(-1, width)
    ones = (1,) * len(chunk)
    return block, (*_align(ones, True, outputs, labels), _objects(versions, ones, True),
                   _objects(keys, ones, True))


def _any_chunk(chunk: list[tuple[Any, ...]], features: list[str]
               ) -> tuple[Any, tuple[np.ndarray, ...]]:
    """Any chunk: its instances (an array, or a list of rows), then each instance's
    prediction, label, version and key."""
    arrays, dtypes, ns, versions, outputs, labels, keys, inputs = zip(*chunk, strict=True)
    width = len(features)
    block: Any = _packed_block(arrays, dtypes, ns, width)
    counts: list[int] | tuple[int, ...] = ns
    if block is None and arrays.count(None) == len(arrays):
        block = _float_block(inputs, width)
        counts = (1,) * len(chunk)
    if block is None:
        block, counts = _rows(arrays, dtypes, ns, inputs, features)
    single = counts.count(1) == len(counts)
    return block, (*_align(counts, single, outputs, labels), _objects(versions, counts, single),
                   _objects(keys, counts, single))


@contextmanager
def _no_gc() -> Iterator[None]:
    """The cycle collector off while a million row tuples are made: none is in a cycle, and
    each collection would walk every object alive (seconds in a process that imported
    MLflow)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def read_columns(path: Path, features: list[str], since: float | None = None,
                 variant: str | None = None) -> LoggedColumns:
    """Features, labels, predictions and versions of the answered requests in the log at
    `path` (optionally from `since` on, optionally of one variant only)."""
    import numpy as np
    import pandas as pd

    width = len(features)
    blocks: list[Any] = []   # per chunk: an array of instances, or a list of instance rows
    cols: list[list[np.ndarray]] = [[], [], [], []]  # predictions, labels, versions, keys
    where, args = _where(since, variant)
    with _no_gc(), closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as con:
        con.execute("BEGIN")  # one snapshot for both queries while the gateway writes on
        dtype = _plain_dtype(con, where, args, width)
        cur = con.execute(_query(con, where, dtype is not None), args)
        while chunk := cur.fetchmany(CHUNK_ROWS):
            block, values = (_plain_chunk(chunk, dtype, width) if dtype is not None
                             else _any_chunk(chunk, features))
            blocks.append(block)
            for col, v in zip(cols, values, strict=True):
                col.append(v)
    if blocks and all(isinstance(b, np.ndarray) for b in blocks):  # each holds >= 1 row
        df = pd.DataFrame(np.concatenate(blocks), columns=features, copy=False)  # a new array
    else:
        rows = [r for b in blocks for r in (b.tolist() if isinstance(b, np.ndarray) else b)]
        df = pd.DataFrame(rows, columns=features) if rows else pd.DataFrame(columns=features)
    preds, labs, vers, keys_ = (pd.Series(np.concatenate(c) if c else [], dtype=object)
                                for c in cols)
    return LoggedColumns(df, labs, preds, vers, keys_)
