"""Read the prediction log (`mlci.predlog/1`) as columns, fast enough for a million rows.

The log is read in chunks. A chunk whose inputs are what the gateway writes for one
instance (a list holding one list of exactly one float per feature, compact JSON) has its
numbers parsed by pandas' C CSV parser in one call per chunk, straight into a float array.
Any other chunk (object instances, strings, nulls, integers, NaN, ragged rows, several
instances in a request) is read with `json.loads` per request, as before. Predictions and
labels are parsed with one `json.loads` per chunk. When every chunk took the fast path the
frame is built from the float array; otherwise all rows go through the same pandas
constructor as before, so values and column types are exactly those of reading the log row
by row (`tests/test_predlog_read.py` checks it against that reader).
"""

from __future__ import annotations

import io
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

CHUNK_ROWS = 50_000  # requests per chunk: bounds the joined text held at once

_NOT_NUMERIC = str.maketrans("", "", "0123456789.eE+-,[]\n")


@dataclass
class LoggedColumns:
    """The answered predictions of a log, one entry per instance, in log order."""

    features: pd.DataFrame
    labels: pd.Series        # the label sent to /feedback for the instance, or None
    predictions: pd.Series
    versions: pd.Series      # the model version that answered, as text
    keys: pd.Series          # the routing key's hash (the randomised unit), else the request


def _query(since: float | None, variant: str | None) -> tuple[str, list[Any]]:
    q = ("SELECT p.version, p.inputs, p.outputs, f.label, p.route_key, p.request_id "
         "FROM predictions p "
         "LEFT JOIN feedback f ON f.request_id = p.request_id WHERE p.error IS NULL")
    args: list[Any] = []
    if since is not None:
        q += " AND p.ts >= ?"
        args.append(since)
    if variant:
        q += " AND p.variant = ?"
        args.append(variant)
    return q + " ORDER BY p.ts", args


def _float_block(inputs: tuple[str | None, ...], width: int) -> np.ndarray | None:
    """The chunk's instances as a (requests x width) float array when every request is
    one instance of exactly `width` floats in compact JSON (what the gateway logs for a
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
    try:  # pandas' C parser: the same correctly rounded doubles as json.loads, ~4x faster
        frame = pd.read_csv(io.StringIO(text.replace("[", "").replace("]", "")),
                            header=None, engine="c")
    except (ValueError, pd.errors.ParserError):
        return None  # a request with more values than the first one
    values = frame.to_numpy()
    # integers only in a column make it int64 for json.loads too, but keep that case exact
    # by the row reader; NaN here is a missing value (there are no NaN tokens)
    if frame.shape != (n, width) or values.dtype.kind != "f" or np.isnan(values).any():
        return None
    return values


def _rows_by_json(inputs: tuple[str | None, ...], features: list[str]
                  ) -> tuple[list[Any], list[int]]:
    rows: list[Any] = []
    counts = []
    for text in inputs:
        xs = json.loads(text or "[]")
        counts.append(len(xs))
        rows.extend(x if isinstance(x, list) else [x.get(f) for f in features] for x in xs)
    return rows, counts


def _parse_all(texts: tuple[str | None, ...], empty: str) -> list[Any]:
    return json.loads("[" + ",".join(t or empty for t in texts) + "]")


def _align(counts: list[int], versions: tuple[Any, ...], outputs: tuple[str | None, ...],
           labels: tuple[str | None, ...], out: tuple[list[Any], list[Any], list[str]]) -> None:
    """Append each instance's prediction, label and version, as the row reader did."""
    preds, labs, vers = out
    parsed_outputs, parsed_labels = _parse_all(outputs, "[]"), _parse_all(labels, "null")
    if all(n == 1 for n in counts):
        preds.extend(ys[0] if ys else None for ys in parsed_outputs)
        labs.extend((ls[0] if ls else None) if isinstance(ls, list) else ls
                    for ls in parsed_labels)
        vers.extend(map(str, versions))
        return
    for n, v, ys, ls in zip(counts, versions, parsed_outputs, parsed_labels, strict=True):
        if not isinstance(ls, list):  # one instance labelled with a scalar, as /feedback allows
            ls = [ls]
        for i in range(n):
            preds.append(ys[i] if i < len(ys) else None)
            labs.append(ls[i] if i < len(ls) else None)
        vers.extend([str(v)] * n)


def read_columns(path: Path, features: list[str], since: float | None = None,
                 variant: str | None = None) -> LoggedColumns:
    """Features, labels, predictions and versions of the answered requests in the log at
    `path` (optionally from `since` on, optionally of one variant only)."""
    import numpy as np
    import pandas as pd

    q, args = _query(since, variant)
    blocks: list[Any] = []   # per chunk: a float array, or a list of instance rows
    out: tuple[list[Any], list[Any], list[str]] = ([], [], [])
    keys: list[str] = []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as con:
        cur = con.execute(q, args)
        while chunk := cur.fetchmany(CHUNK_ROWS):
            versions, inputs, outputs, labels, route_keys, request_ids = zip(*chunk, strict=True)
            block: Any = _float_block(inputs, len(features))
            if block is None:
                block, counts = _rows_by_json(inputs, features)
            else:
                counts = [1] * len(inputs)
            blocks.append(block)
            _align(counts, versions, outputs, labels, out)
            for n, rk, rid in zip(counts, route_keys, request_ids, strict=True):
                keys.extend([rk or f"request:{rid}"] * n)
    if blocks and all(isinstance(b, np.ndarray) for b in blocks):  # each holds >= 1 row
        df = pd.DataFrame(np.concatenate(blocks), columns=features)
    else:
        rows = [r for b in blocks for r in (b.tolist() if isinstance(b, np.ndarray) else b)]
        df = pd.DataFrame(rows, columns=features) if rows else pd.DataFrame(columns=features)
    return LoggedColumns(df, pd.Series(out[1], dtype=object), pd.Series(out[0], dtype=object),
                         pd.Series(out[2], dtype=object), pd.Series(keys, dtype=object))
