"""The vectorised prediction-log reader gives exactly the frame of the row-by-row reader
(`json.loads` per request), on logs written by the gateway's own `PredictionLog`."""

from __future__ import annotations

import importlib.util
import random
import struct
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlci.serve import predlog_read
from mlci.serve.predlog import PredictionLog

FEATURES = ["a", "b", "c"]
_spec = importlib.util.spec_from_file_location(
    "monitor_volume", Path(__file__).resolve().parents[1] / "bench/monitor_volume.py")
assert _spec and _spec.loader
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def write(path: Path, requests: list[dict[str, Any]]) -> None:
    log = PredictionLog(path)
    for i, r in enumerate(requests):
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


def test_gateway_rows_take_the_fast_path_with_identical_doubles(tmp_path: Path,
                                                               monkeypatch) -> None:
    rng = random.Random(1)
    specials = [0.0, -0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 1e22]
    reqs = [{"inputs": [[random_double(rng) for _ in FEATURES]], "outputs": [rng.random()],
             "label": [rng.choice(["x", "y"])] if i % 3 else rng.choice([1, None])}
            for i in range(3000)]
    reqs.append({"inputs": [specials[:3]]})
    reqs.append({"inputs": [specials[3:6]]})
    reqs.append({"inputs": [[specials[6], 2.5, -1e-7]]})
    write(tmp_path / "p.db", reqs)
    seen = []
    real = predlog_read._float_block
    monkeypatch.setattr(predlog_read, "_float_block",
                        lambda *a: seen.append(real(*a) is not None) or real(*a))
    monkeypatch.setattr(predlog_read, "CHUNK_ROWS", 500)
    new = assert_same(tmp_path / "p.db")
    assert seen and all(seen)  # the fast path really ran, on every chunk
    assert list(new.features.dtypes) == ["float64"] * 3


@pytest.mark.parametrize("odd", [
    {"inputs": [{"a": 1.5, "c": 2.5}]},                       # object instance, missing feature
    {"inputs": [{"a": "red", "b": None, "c": 1.0}]},          # strings and nulls
    {"inputs": [[1, 2, 3]]},                                  # integers
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
                                                            odd: dict[str, Any]) -> None:
    reqs = [{"inputs": [[i + 0.25, -i - 0.5, i * 1e-3]], "label": ["x"]} for i in range(30)]
    reqs.insert(17, odd)
    reqs.append({"error": "boom", "inputs": [["not", "read", 0]]})
    write(tmp_path / "p.db", reqs)
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
