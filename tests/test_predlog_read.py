"""The vectorised prediction-log reader gives exactly the frame of the row-by-row reader
(`json.loads` or one unpacking per request), on logs written by the gateway's own
`PredictionLog` (inputs packed in columns) and on logs of the `mlci.predlog/1` format (inputs
as JSON), before and after the gateway migrates them."""

from __future__ import annotations

import importlib.util
import json
import random
import sqlite3
import struct
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlci.serve import predlog_read
from mlci.serve.predlog import SCHEMA, PredictionLog, instances, pack

FEATURES = ["a", "b", "c"]
_spec = importlib.util.spec_from_file_location(
    "monitor_volume", Path(__file__).resolve().parents[1] / "bench/monitor_volume.py")
assert _spec and _spec.loader
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


# the prediction log as mlci.predlog/1 created it (inputs always JSON), for the migration
V1_DDL = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE predictions(
  request_id TEXT PRIMARY KEY, ts REAL NOT NULL, model TEXT, variant TEXT NOT NULL,
  version TEXT, canary_id TEXT, route_key TEXT, n INTEGER, inputs TEXT, outputs TEXT,
  probabilities TEXT, latency_ms REAL, error TEXT,
  shadow_version TEXT, shadow_outputs TEXT, shadow_error TEXT);
CREATE INDEX predictions_canary ON predictions(canary_id, variant);
CREATE INDEX predictions_ts ON predictions(ts);
CREATE TABLE feedback(request_id TEXT PRIMARY KEY, ts REAL NOT NULL, label TEXT);
INSERT INTO meta VALUES('schema', 'mlci.predlog/1');
"""


def _j(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"))


def write_v1(path: Path, requests: list[dict[str, Any]], start: int = 0) -> None:
    """Rows as the mlci.predlog/1 gateway logged them, into a log of that format."""
    con = sqlite3.connect(path, isolation_level=None)
    if start == 0:
        con.executescript(V1_DDL)
    con.execute("BEGIN")
    for i, r in enumerate(requests, start):
        inputs = r.get("inputs", [[1.0, 2.0, 3.0]])
        con.execute("INSERT INTO predictions(request_id, ts, model, variant, version, "
                    "canary_id, route_key, n, inputs, outputs, probabilities, latency_ms, "
                    "error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (f"r{i}", 1000.0 + i, "m", r.get("variant", "champion"),
                     r.get("version", "1"), None, None, len(inputs), _j(inputs),
                     _j(r.get("outputs", ["x"] * len(inputs))), None, 1.0, r.get("error")))
        if "label" in r:
            con.execute("INSERT INTO feedback VALUES (?,?,?)", (f"r{i}", 2000.0, _j(r["label"])))
    con.execute("COMMIT")
    con.close()


def write(path: Path, requests: list[dict[str, Any]], fmt: int = 2, start: int = 0) -> None:
    if fmt == 1:
        write_v1(path, requests, start)
        return
    log = PredictionLog(path)
    for i, r in enumerate(requests, start):
        rid = f"r{i}"
        inputs = r.get("inputs", [[1.0, 2.0, 3.0]])
        log.log(request_id=rid, model="m", variant=r.get("variant", "champion"),
                version=r.get("version", "1"), canary_id=None, route_key=None, inputs=inputs,
                outputs=r.get("outputs", ["x"] * len(inputs)), probabilities=None,
                latency_ms=1.0, error=r.get("error"), n=len(inputs))
        if "label" in r:
            log.feedback(rid, r["label"])
    log.close()


def assert_same(path: Path, features: list[str] = FEATURES,
                **kw: Any) -> predlog_read.LoggedColumns:
    old = bench.read_row_by_row(path, features, **kw)
    new = predlog_read.read_columns(path, features, **kw)
    pd.testing.assert_frame_equal(new.features, old[0], check_exact=True)
    for got, want in zip((new.labels, new.predictions, new.versions), old[1:], strict=True):
        pd.testing.assert_series_equal(got, want, check_exact=True)
        assert [type(v) for v in got] == [type(v) for v in want]
    return new


def random_double(rng: random.Random) -> float:
    """Any finite double, from random bits: every exponent and every last digit."""
    while True:
        x = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if x == x and abs(x) != float("inf"):
            return x


@pytest.mark.parametrize("fmt", [2, 1])
def test_gateway_rows_take_the_fast_path_with_identical_doubles(tmp_path: Path, monkeypatch,
                                                               fmt: int) -> None:
    rng = random.Random(1)
    specials = [0.0, -0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 1e22]
    reqs = [{"inputs": [[random_double(rng) for _ in FEATURES]], "outputs": [rng.random()],
             "label": [rng.choice(["x", "y"])] if i % 3 else rng.choice([1, None])}
            for i in range(3000)]
    reqs.append({"inputs": [specials[:3]]})
    reqs.append({"inputs": [specials[3:6]]})
    reqs.append({"inputs": [[specials[6], 2.5, -1e-7]]})
    write(tmp_path / "p.db", reqs, fmt)
    seen = []
    fast = "_plain_chunk" if fmt == 2 else "_float_block"
    real = getattr(predlog_read, fast)
    monkeypatch.setattr(predlog_read, fast,
                        lambda *a: seen.append(real(*a) is not None) or real(*a))
    monkeypatch.setattr(predlog_read, "CHUNK_ROWS", 500)
    new = assert_same(tmp_path / "p.db")
    assert seen and all(seen)  # the fast path really ran, on every chunk
    assert list(new.features.dtypes) == ["float64"] * 3


@pytest.mark.parametrize("fmt", [2, 1])
@pytest.mark.parametrize("odd", [
    {"inputs": [{"a": 1.5, "c": 2.5}]},                       # object instance, missing feature
    {"inputs": [{"a": "red", "b": None, "c": 1.0}]},          # strings and nulls
    {"inputs": [[1, 2, 3]]},                                  # integers
    {"inputs": [[1, 2.5, 3]]},                                # integers and floats
    {"inputs": [[True, 2.5, 3.5]]},                           # a boolean is no number here
    {"inputs": [[2**70, 1, 2]]},                              # beyond int64
    {"inputs": [[1.5, 2.5, 3.5], [4.5, 5.5, 6.5]],
     "label": ["y", "z"]},                                    # two packed instances
    {"inputs": [[1.5, None, 2.5]]},                           # null in a list
    {"inputs": [[float("nan"), 1.0, float("inf")]]},          # NaN and Infinity tokens
    {"inputs": [[1.5, 2.5]]},                                 # short row
    {"inputs": [[0.5, 1.5, 2.5], [3.5, 4.5, 5.5]], "outputs": ["x"],
     "label": ["y", "z"]},                                    # two instances, one output
    {"inputs": [[0.5, 1.5, 2.5], {"b": True}], "label": "y"},  # mixed, scalar label
    {"inputs": [[0.5, 1.5, 2.5]], "outputs": [[1, 2]], "label": [True]},  # nested output
    {"inputs": []},                                           # no instance
])
def test_any_other_row_in_a_chunk_reads_like_the_row_reader(tmp_path: Path, monkeypatch,
                                                            odd: dict[str, Any],
                                                            fmt: int) -> None:
    reqs = [{"inputs": [[i + 0.25, -i - 0.5, i * 1e-3]], "label": ["x"]} for i in range(30)]
    reqs.insert(17, odd)
    reqs.append({"error": "boom", "inputs": [["not", "read", 0]]})
    write(tmp_path / "p.db", reqs, fmt)
    monkeypatch.setattr(predlog_read, "CHUNK_ROWS", 10)  # fast chunks before and after it
    assert_same(tmp_path / "p.db")


def test_filters_and_an_empty_window(tmp_path: Path) -> None:
    reqs = [{"inputs": [[i + 0.5, 1.5, 2.5]], "variant": ("challenger" if i % 2 else "champion"),
             "version": str(i % 2 + 1), "label": ["x"]} for i in range(20)]
    write(tmp_path / "p.db", reqs)
    assert_same(tmp_path / "p.db", variant="challenger")
    assert_same(tmp_path / "p.db", since=0.0)
    empty = assert_same(tmp_path / "p.db", since=4e9)
    assert empty.features.empty and list(empty.features.columns) == FEATURES


def test_each_instance_carries_its_randomised_unit(tmp_path: Path) -> None:
    """Cluster-robust variance needs the routing key of every instance: the hashed key when the
    request had one, else the request itself (its own cluster)."""
    log = PredictionLog(tmp_path / "p.db")
    for rid, key, n in (("r0", "k-alice", 2), ("r1", None, 1), ("r2", "k-alice", 1)):
        log.log(request_id=rid, model="m", variant="champion", version="1", canary_id=None,
                route_key=key, inputs=[[1.0, 2.0, 3.0]] * n, outputs=["x"] * n,
                probabilities=None, latency_ms=1.0, error=None, n=n)
    log.close()
    got = predlog_read.read_columns(tmp_path / "p.db", FEATURES)
    assert list(got.keys) == ["k-alice", "k-alice", "request:r1", "k-alice"]
    assert len(got.keys) == len(got.features)


def test_an_integer_log_reads_as_integers(tmp_path: Path, monkeypatch) -> None:
    """Packed integers stay integers (int64 columns, as json.loads gives), and a chunk of
    integers next to a chunk of floats makes float columns, as pandas does."""
    write(tmp_path / "i.db", [{"inputs": [[i, -i, 2**62]]} for i in range(20)])
    assert list(assert_same(tmp_path / "i.db").features.dtypes) == ["int64"] * 3
    write(tmp_path / "m.db", [{"inputs": [[i, -i, 7]]} for i in range(10)]
          + [{"inputs": [[i + 0.5, 1.5, 2.5]]} for i in range(10)])
    monkeypatch.setattr(predlog_read, "CHUNK_ROWS", 10)
    assert list(assert_same(tmp_path / "m.db").features.dtypes) == ["float64"] * 3
    # JSON rows (mlci.predlog/1) with a column of integers only keep it int64 too
    write_v1(tmp_path / "v1.db", [{"inputs": [[i + 0.5, 1.5, i]]} for i in range(20)])
    assert list(assert_same(tmp_path / "v1.db").features.dtypes) == ["float64"] * 2 + ["int64"]


def test_another_width_is_read_like_the_row_reader(tmp_path: Path) -> None:
    """Requests answered by a model with another number of features (packed, but not of the
    reference's width) do not take the fast path."""
    write(tmp_path / "p.db", [{"inputs": [[1.5, 2.5]]}, {"inputs": [[1.5, 2.5, 3.5, 4.5]]}])
    assert predlog_read._packed_block((pack([[1.5, 2.5]])[0],), ("<f8",), (1,), 3) is None
    with pytest.raises(ValueError):  # what the row reader does with a longer row
        bench.read_row_by_row(tmp_path / "p.db", FEATURES)
    with pytest.raises(ValueError):
        predlog_read.read_columns(tmp_path / "p.db", FEATURES)


def test_a_v1_log_is_read_then_migrated_in_place_when_the_gateway_opens_it(
        tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "p.db"
    old = [{"inputs": [[i + 0.5, 1.5, 2.5]], "label": ["x"]} for i in range(25)]
    old[3] = {"inputs": [{"a": 1.5, "b": None, "c": 2.5}]}
    write_v1(path, old)
    assert_same(path)  # an unmigrated log reads as before
    con = sqlite3.connect(path)
    before = con.execute("SELECT * FROM predictions ORDER BY ts").fetchall()
    con.close()
    write(path, [{"inputs": [[i + 0.25, 0.5, 1.5]], "label": ["y"]} for i in range(25)],
          start=25)  # the gateway opens it: migrated, then logs packed rows
    PredictionLog(path).close()  # opening again changes nothing
    con = sqlite3.connect(path)
    assert con.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == (SCHEMA,)
    after = con.execute("SELECT * FROM predictions ORDER BY ts").fetchall()
    con.close()
    assert [r[:16] for r in after[:25]] == before  # old rows kept as they were
    assert all(r[16:] == (None, None) for r in after[:25])
    assert all(r[8] is None and r[16] is not None for r in after[25:])
    monkeypatch.setattr(predlog_read, "CHUNK_ROWS", 20)  # JSON, mixed and packed chunks
    new = assert_same(path)
    assert len(new.features) == 50


@pytest.mark.parametrize("rows", [
    [[1.5, -0.0, 5e-324]], [[1, -2, 2**63 - 1], [0, 0, -2**63]], [[0.5], [1.5], [2.5]],
])
def test_packed_inputs_give_back_what_the_gateway_got(rows: list[list[Any]]) -> None:
    packed, dtype = pack(rows)  # type: ignore[misc]
    got = instances(None, packed, dtype, len(rows))
    assert got == rows and [type(v) for r in got for v in r] == [type(v) for r in rows for v in r]


@pytest.mark.parametrize("rows", [
    [], [[]], [[1.5, 2]], [[True, 1]], [[1.5], [2.5, 3.5]], [[2**63]], [["a"]], [[None]],
    [{"a": 1.5}], "x",
])
def test_anything_else_stays_json(rows: Any) -> None:
    assert pack(rows) is None
