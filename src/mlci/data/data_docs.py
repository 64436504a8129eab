"""Build Great Expectations' Data Docs, without altair's per-chart schema table.

GX draws a chart for each KL-divergence expectation with altair. altair 5-6 rebuilds, on every
`SchemaBase.from_dict` call, a table from the hash of each of its ~570 schema classes to the
class (one `json.dumps` each); a chart makes several such calls, and that table was nearly half
of a Data Docs build (Iris, a new process: 0.66 s, 0.36 s without it, medians of 5). The table
depends only on the classes, so it is built once per class here; the lookup it feeds and the
charts it gives are altair's own.
Upstream: vega/altair#3547 ("the breadth-first search now occurs only once").

A wide suite has a KL-divergence expectation per numeric column, and each is drawn up to four
times (the expected and the observed histogram of each result): altair's
schema validation, shorthand parsing and data sanitising of every chart were ~3/4 of a
1,000-column build. Every one of these charts is the same bar chart over different numbers,
so altair builds the chart once per shape (`_Charts`) and each further chart is that spec
with its own data, put in as altair's own `to_dict` puts it (values as its sanitiser gives
them, the dataset named by altair's own hash). Anything else goes to altair as before.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def build(ctx: Any, site: str, keys: list[Any] | None = None, index: bool = True) -> None:
    """Build the site's pages (those of `keys`: result identifiers; all without)."""
    _altair_from_dict_once()
    with charts_from_one_spec():
        ctx.build_data_docs(site_names=[site], resource_identifiers=keys, build_index=index)


def build_apart(ctx: Any, site: str, keys: list[Any]) -> tuple[int, list[Any]] | None:
    """Build these pages in a forked child while this process goes on (validating the next
    dataset, building its pages): a wide suite's pages take longer than validating it.
    None where there is no fork or no second core: the caller builds them itself."""
    if not _second_core():
        return None
    pid = os.fork()
    if pid == 0:  # the child: these pages, nothing else (no index, no exit handlers)
        code = 1
        try:
            _quiet()
            build(ctx, site, keys, index=False)
            code = 0
        finally:
            os._exit(code)
    return pid, keys


def _quiet() -> None:
    """The child says nothing (the parent rebuilds its pages if it fails), and writes to no
    stream object of the parent's: another thread (a progress ticker) may have held one's
    lock at the fork."""
    import logging
    import sys
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115  # closed by _exit


def finish(ctx: Any, site: str, keys: list[Any], apart: list[tuple[int, list[Any]]]) -> None:
    """Build the last pages here, wait for the children (the pages of one that failed are
    built here), then the index: GX lists the pages the site holds."""
    try:
        build(ctx, site, keys, index=not apart)
    finally:
        failed = [k for pid, k in apart if not _ended_well(pid)]
    for k in failed:
        build(ctx, site, k, index=False)
    if apart:
        build(ctx, site, [NO_PAGE], index=True)


NO_PAGE = object()  # resource identifiers that name no page: the index alone
CHILD_DEADLINE = 600.0  # seconds; a child still building then is stopped (its pages built here)


def _ended_well(pid: int, deadline: float = CHILD_DEADLINE) -> bool:
    """Whether the child built its pages. A child that hangs (a lock another thread held at
    the fork) is killed at the deadline instead of holding the command forever."""
    import signal
    import time

    end = time.monotonic() + deadline
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) == 0
        if time.monotonic() > end:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return False
        time.sleep(0.05)


def _second_core() -> bool:
    if not hasattr(os, "fork"):
        return False
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return (len(cores) if cores is not None else os.cpu_count() or 1) > 1


@contextmanager
def charts_from_one_spec() -> Iterator[None]:
    """GX's KL-divergence renderer draws its charts with `_Charts` while the docs build."""
    try:
        import altair
        from altair.vegalite.v6 import api
        from great_expectations.expectations.core import (
            expect_column_kl_divergence_to_be_less_than as kl,
        )
    except ImportError:  # no altair (GX draws no chart), or another altair major: as it is
        yield
        return
    if getattr(kl, "alt", None) is not altair or not hasattr(api, "_dataset_name"):
        yield
        return
    kl.alt = _Charts(altair, api._dataset_name)  # type: ignore[assignment]  # module stand-in
    renderer = kl.ExpectColumnKLDivergenceToBeLessThan
    own = renderer.__dict__["_get_kl_divergence_chart"]
    renderer._get_kl_divergence_chart = classmethod(  # type: ignore[method-assign, assignment]
        _once_per_partition(own.__func__))
    try:
        yield
    finally:
        kl.alt = altair
        renderer._get_kl_divergence_chart = own  # type: ignore[method-assign]


def _once_per_partition(chart: Any) -> Any:
    """GX's chart of a partition, drawn once per partition: the expected histogram of a
    column is drawn on both results' pages. Each call gets its own
    copy, as each call got its own chart."""
    drawn: dict[str, Any] = {}

    def once(cls: type, partition_object: Any, header: Any = None) -> Any:
        try:
            key = json.dumps([partition_object, header], sort_keys=True, allow_nan=True)
        except (TypeError, ValueError):  # a header object, or values JSON cannot write
            return chart(cls, partition_object, header)
        if key not in drawn:
            drawn[key] = chart(cls, partition_object, header)
        return copy.deepcopy(drawn[key])

    return once


class _Charts:
    """Stands in for the `altair` module in GX's KL renderer: `Chart(df).mark_bar(...)
    .encode(...).properties(...).to_dict()` as altair gives it, altair itself building the
    spec once per chart shape (the calls' arguments and the frame's columns and dtypes)."""

    def __init__(self, altair: Any, dataset_name: Any) -> None:
        self._alt = altair
        self._name = dataset_name
        self._specs: dict[str, dict[str, Any]] = {}

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._alt, attr)

    def Chart(self, data: Any = None, **kwargs: Any) -> Any:  # noqa: N802 (altair's name)
        if kwargs or not _all_float_frame(data):
            return self._alt.Chart(data, **kwargs)
        return _Chart(self, data, [])

    def spec(self, df: Any, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> Any:
        shape = repr((calls, [(c, str(t)) for c, t in df.dtypes.items()]))
        values = _records(df)
        spec = self._specs.get(shape)
        if spec is None or values is None:
            chart = self._alt.Chart(df)
            for method, args, kwargs in calls:
                chart = getattr(chart, method)(*args, **kwargs)
            built = chart.to_dict()
            if values is not None and set(built.get("datasets", {})) == {
                    built.get("data", {}).get("name")}:
                self._specs[shape] = built
            return built
        name = self._name(values)
        out = json.loads(json.dumps(spec))  # the same keys in the same order: only the data
        out["data"] = {"name": name}
        out["datasets"] = {name: values}
        return out


class _Chart:
    def __init__(self, charts: _Charts, df: Any, calls: list[Any]) -> None:
        self._charts, self._df, self._calls = charts, df, calls

    def _then(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Chart:
        return _Chart(self._charts, self._df, [*self._calls, (method, args, kwargs)])

    def mark_bar(self, *args: Any, **kwargs: Any) -> _Chart:
        return self._then("mark_bar", args, kwargs)

    def encode(self, *args: Any, **kwargs: Any) -> _Chart:
        return self._then("encode", args, kwargs)

    def properties(self, *args: Any, **kwargs: Any) -> _Chart:
        return self._then("properties", args, kwargs)

    def to_dict(self) -> Any:
        return self._charts.spec(self._df, self._calls)


def _all_float_frame(df: Any) -> bool:
    import pandas as pd

    return (isinstance(df, pd.DataFrame) and type(df.index) is pd.RangeIndex
            and type(df.columns) is pd.Index and len(df.columns) > 0
            and all(isinstance(c, str) for c in df.columns)
            and all(str(t) == "float64" for t in df.dtypes))


def _records(df: Any) -> list[dict[str, Any]] | None:
    """altair's values for an all-float64 frame (`sanitize_pandas_dataframe`, then
    `to_dict(orient="records")`): Python floats, NaN and infinities as None."""
    if df.shape[0] == 0:
        return None  # altair names an empty dataset differently: left to it
    columns = [[None if math.isnan(v) or math.isinf(v) else v for v in df[c].tolist()]
               for c in df.columns]
    return [dict(zip(df.columns, row, strict=True)) for row in zip(*columns, strict=True)]


def _altair_from_dict_once() -> None:
    try:
        from altair.utils import schemapi
    except ImportError:  # GX draws no chart without altair
        return
    base = schemapi.SchemaBase
    converter_type = getattr(schemapi, "_FromDict", None)
    if hasattr(base.from_dict, "_altair") or converter_type is None:
        return  # already in place, or an altair whose internals differ: left as it is
    converters: dict[type, Any] = {}

    def from_dict(cls: type, dct: dict[str, Any], validate: bool = True) -> Any:
        if validate:
            cls.validate(dct)  # type: ignore[attr-defined]
        converter = converters.get(cls)
        if converter is None:
            converter = converters[cls] = converter_type(
                cls._default_wrapper_classes())  # type: ignore[attr-defined]
        return converter.from_dict(dct, cls)

    from_dict._altair = base.__dict__["from_dict"]  # type: ignore[attr-defined]  # the original
    base.from_dict = classmethod(from_dict)  # type: ignore[method-assign, assignment]
