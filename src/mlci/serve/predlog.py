"""The prediction log: every answered request, in an embedded SQLite database.

One row per `/predict` request: time, model, variant, version, rollout id, hashed routing key,
inputs, outputs, latency and error; shadow answers are added to the same row; labels arriving
later through `/feedback` go to a second table joined on `request_id`, once per request. The
gateway writes a row and commits it *before* it answers, in WAL mode, so a killed gateway loses
no prediction it has answered. The canary controller and the monitoring job read the same file.

Schema (`mlci.predlog/2`):

    predictions(request_id TEXT PRIMARY KEY, ts REAL, model TEXT, variant TEXT, version TEXT,
                canary_id TEXT, route_key TEXT, n INTEGER, inputs TEXT, outputs TEXT,
                probabilities TEXT, latency_ms REAL, error TEXT,
                shadow_version TEXT, shadow_outputs TEXT, shadow_error TEXT,
                inputs_array BLOB, inputs_dtype TEXT)
    feedback(request_id TEXT PRIMARY KEY, ts REAL, label TEXT)

`outputs`, `probabilities` and `label` are JSON lists (one entry per instance). The inputs are
stored in columns when they are numbers: a request whose `n` instances are lists of the same
width holding only floats (or only integers) is one packed row-major array in `inputs_array`
(`inputs_dtype` `<f8` or `<i8`, little-endian), so the monitor reads a million of them
with one `numpy.frombuffer` instead of parsing JSON per request; any other request keeps
`inputs` as a JSON list. `instances()` gives either back as the JSON value the gateway got.

A log written as `mlci.predlog/1` (inputs always JSON) is migrated when the gateway opens it:
the two columns are added (old rows keep their JSON `inputs` and are read as before) and the
schema recorded becomes `mlci.predlog/2`.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "mlci.predlog/2"
PROBE_BYTES = 16_384  # the readiness probe's write: larger than a typical request's row

_DDL = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS predictions(
  request_id TEXT PRIMARY KEY, ts REAL NOT NULL, model TEXT, variant TEXT NOT NULL,
  version TEXT, canary_id TEXT, route_key TEXT, n INTEGER, inputs TEXT, outputs TEXT,
  probabilities TEXT, latency_ms REAL, error TEXT,
  shadow_version TEXT, shadow_outputs TEXT, shadow_error TEXT,
  inputs_array BLOB, inputs_dtype TEXT);
CREATE INDEX IF NOT EXISTS predictions_canary ON predictions(canary_id, variant);
CREATE INDEX IF NOT EXISTS predictions_ts ON predictions(ts);
CREATE TABLE IF NOT EXISTS feedback(request_id TEXT PRIMARY KEY, ts REAL NOT NULL, label TEXT);
"""


def connect(path: Path, *, readonly: bool = False, timeout: float = 30.0,
            max_bytes: int | None = None) -> sqlite3.Connection:
    """A connection that waits at most `timeout` seconds for another process's lock;
    `max_bytes` caps the database (beyond it a write fails as on a full disk)."""
    path = Path(path)
    if readonly:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout,
                              check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=timeout, check_same_thread=False,
                              isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")  # WAL: survives a killed process
        con.executescript(_DDL)
        migrate(con)
        if max_bytes is not None:
            page = con.execute("PRAGMA page_size").fetchone()[0]
            con.execute(f"PRAGMA max_page_count={max(1, int(max_bytes) // page)}")
    return con


def has_arrays(con: sqlite3.Connection) -> bool:
    """Whether the log has the columns of packed inputs (`mlci.predlog/2`)."""
    return any(r[1] == "inputs_array" for r in con.execute("PRAGMA table_info(predictions)"))


def _current(con: sqlite3.Connection) -> bool:
    row = con.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    return row is not None and row[0] == SCHEMA and has_arrays(con)


def migrate(con: sqlite3.Connection) -> None:
    """Bring a log to `SCHEMA`, in one transaction (two gateways may open it at once): a
    `mlci.predlog/1` log gains the packed-input columns; its rows stay as they are. A log
    already current is not written to (a full one still opens)."""
    if _current(con):
        return
    con.execute("BEGIN IMMEDIATE")
    try:
        if not has_arrays(con):
            con.execute("ALTER TABLE predictions ADD COLUMN inputs_array BLOB")
            con.execute("ALTER TABLE predictions ADD COLUMN inputs_dtype TEXT")
        con.execute("INSERT OR REPLACE INTO meta VALUES('schema', ?)", (SCHEMA,))
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise


_BIG_ENDIAN = sys.byteorder == "big"


def pack(rows: Any) -> tuple[bytes, str] | None:
    """The instances as one packed row-major array and its dtype, when they are lists of
    the same width holding only floats (`<f8`) or only integers within int64 (`<i8`); else
    None (the request is logged as JSON). Exact types only: a bool is no integer, and a
    request mixing integers and floats stays JSON, so reading gives back the same values
    with the same types."""
    if type(rows) is not list or not rows or any(type(r) is not list for r in rows):
        return None
    width = len(rows[0])
    if width == 0 or any(len(r) != width for r in rows):
        return None
    flat = rows[0] if len(rows) == 1 else [v for r in rows for v in r]
    if all(type(v) is float for v in flat):
        code, dtype = "d", "<f8"
    elif all(type(v) is int for v in flat):
        code, dtype = "q", "<i8"
    else:
        return None
    try:
        packed = array(code, flat)
    except OverflowError:  # an integer beyond int64
        return None
    if _BIG_ENDIAN:
        packed.byteswap()
    return packed.tobytes(), dtype


def instances(inputs: str | None, packed: bytes | None, dtype: str | None, n: int) -> Any:
    """A logged request's instances as the gateway got them (a list of lists, or of
    objects), from whichever column holds them."""
    if packed is None:
        return json.loads(inputs) if inputs else None
    values = array("d" if dtype == "<f8" else "q", packed)
    if _BIG_ENDIAN:
        values.byteswap()
    width = len(values) // n
    return [values[i * width:(i + 1) * width].tolist() for i in range(n)]


class LogUnavailable(RuntimeError):
    """The log cannot take a write now (disk full, locked by another process, I/O error)."""


class DuplicateLabel(ValueError):
    """The request already has a label; labels are written once."""


@dataclass(frozen=True)
class Retention:
    """What the log keeps: rows younger than `max_age` seconds, and at most `max_bytes` of
    them (the oldest go first, the running rollout's last). None: no limit."""

    max_bytes: int | None = None
    max_age: float | None = None
    every: float = 1.0  # seconds between checks (a check costs two PRAGMAs)


class PredictionLog:
    """The gateway's writer. One connection, serialised by a lock; every call runs on a
    worker thread and waits at most `lock_timeout` seconds, for this lock and for SQLite's
    (another process holding the database), then raises `LogUnavailable`."""

    def __init__(self, path: Path, *, lock_timeout: float = 2.0,
                 max_bytes: int | None = None, retention: Retention | None = None) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self.con = connect(self.path, timeout=lock_timeout, max_bytes=max_bytes)
        self.lock = threading.Lock()
        self.retention = retention or Retention()
        self.keep: str | None = None  # the running rollout: its rows are pruned last
        self.pruned = 0               # rows deleted by retention since start
        self._next_prune = 0.0

    def used_bytes(self) -> int:
        """Bytes of the database holding rows (freed pages are reused, not counted)."""
        pages, free, size = (self.con.execute(f"PRAGMA {p}").fetchone()[0]
                             for p in ("page_count", "freelist_count", "page_size"))
        return (pages - free) * size

    def prune(self, now: float | None = None) -> int:
        """Apply the retention (under the lock): rows past the age, then the oldest rows
        while over the size (outside the running rollout first). Rows deleted."""
        r, now = self.retention, time.time() if now is None else now
        deleted = 0
        if r.max_age is not None:
            deleted += self._delete("ts < ?", (now - r.max_age,))
        if r.max_bytes is not None:
            for scope in (("canary_id IS NOT ?",) if self.keep else ()) + (None,):
                while self.used_bytes() > r.max_bytes:
                    n = self._delete_oldest(scope)
                    if n == 0:
                        break
                    deleted += n
        self.pruned += deleted
        return deleted

    def _delete_oldest(self, scope: str | None) -> int:
        total = self.con.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
        batch = max(16, total // 10)  # a tenth at a time: few passes, little overshoot
        where = f"WHERE {scope}" if scope else ""
        args: tuple = (self.keep,) if scope else ()
        return self._delete(f"request_id IN (SELECT request_id FROM predictions {where} "
                            f"ORDER BY ts LIMIT {batch})", args)

    def _delete(self, where: str, args: tuple) -> int:
        self.con.execute("BEGIN IMMEDIATE")
        try:
            self.con.execute(f"DELETE FROM feedback WHERE request_id IN "
                             f"(SELECT request_id FROM predictions WHERE {where})", args)
            n = self.con.execute(f"DELETE FROM predictions WHERE {where}", args).rowcount
            self.con.execute("COMMIT")
        except BaseException:
            if self.con.in_transaction:
                self.con.execute("ROLLBACK")
            raise
        return n

    def _maybe_prune(self) -> None:
        """Called under the lock after a write: retention at most every `every` seconds."""
        r = self.retention
        if r.max_bytes is None and r.max_age is None:
            return
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + r.every
        self.prune()

    def _write(self, sql: str, args: tuple, prune: bool = False) -> None:
        if not self.lock.acquire(timeout=self.lock_timeout):
            raise LogUnavailable(f"log busy for over {self.lock_timeout:g} s")
        try:
            if prune:  # before the write: room freed first is what a full log needs
                self._maybe_prune()
            self.con.execute(sql, args)
        except sqlite3.IntegrityError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise LogUnavailable(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.lock.release()

    def log(self, *, request_id: str, model: str, variant: str, version: str | None,
            canary_id: str | None, route_key: str | None, inputs: Any, outputs: Any,
            probabilities: Any, latency_ms: float, error: str | None, n: int) -> None:
        packed = pack(inputs)
        row = (request_id, time.time(), model, variant, version, canary_id, route_key, n,
               None if packed else _j(inputs), _j(outputs), _j(probabilities), latency_ms,
               error, *(packed or (None, None)))
        self._write(
            "INSERT INTO predictions(request_id, ts, model, variant, version, canary_id, "
            "route_key, n, inputs, outputs, probabilities, latency_ms, error, inputs_array, "
            "inputs_dtype) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row, prune=True)

    def log_shadow(self, request_id: str, version: str, outputs: Any, error: str | None) -> None:
        self._write("UPDATE predictions SET shadow_version=?, shadow_outputs=?, shadow_error=? "
                    "WHERE request_id=?", (version, _j(outputs), error, request_id))

    def lookup(self, request_id: str) -> tuple[str, str | None, Any, bool] | None:
        """(variant, version, outputs, labelled already?) of a logged request, or None."""
        if not self.lock.acquire(timeout=self.lock_timeout):
            raise LogUnavailable(f"log busy for over {self.lock_timeout:g} s")
        try:
            row = self.con.execute(
                "SELECT p.variant, p.version, p.outputs, f.request_id IS NOT NULL "
                "FROM predictions p LEFT JOIN feedback f ON f.request_id = p.request_id "
                "WHERE p.request_id=?", (request_id,)).fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise LogUnavailable(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.lock.release()
        if row is None:
            return None
        return row[0], row[1], (json.loads(row[2]) if row[2] else None), bool(row[3])

    def feedback(self, request_id: str, label: Any) -> None:
        """Record a label, once: a second label for the same request raises DuplicateLabel
        (the primary key decides, so two racing labels cannot both land)."""
        try:
            self._write("INSERT INTO feedback VALUES (?,?,?)",
                        (request_id, time.time(), _j(label)))
        except sqlite3.IntegrityError:
            raise DuplicateLabel(request_id) from None

    def probe(self) -> None:
        """A write of a typical request's size, rolled back: whether a failed log takes
        writes again."""
        if not self.lock.acquire(timeout=self.lock_timeout):
            raise LogUnavailable(f"log busy for over {self.lock_timeout:g} s")
        try:
            self.con.execute("BEGIN IMMEDIATE")
            try:
                self.con.execute("INSERT INTO meta VALUES('probe', randomblob(?))",
                                 (PROBE_BYTES,))
            finally:
                if self.con.in_transaction:  # SQLITE_FULL may have rolled it back already
                    self.con.execute("ROLLBACK")
        except (sqlite3.Error, OSError) as exc:
            raise LogUnavailable(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.lock.release()

    def close(self) -> None:
        with self.lock:
            self.con.close()


def _j(v: Any) -> str | None:
    return None if v is None else json.dumps(v, separators=(",", ":"), default=str)


def same(a: Any, b: Any) -> bool:
    """Labels and predictions compare as text ("3" equals 3), so JSON types do not matter."""
    return str(a) == str(b)


@dataclass
class VariantStats:
    """What the controller judges one variant on, over one rollout."""

    variant: str
    version: str | None = None
    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    labelled: int = 0
    correct: int = 0
    p99_ms: float | None = None  # given when read from metrics (no single latencies)

    @property
    def answered(self) -> int:
        return self.requests - self.errors

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    def p99(self) -> float | None:
        return self.p99_ms if self.p99_ms is not None else percentile(self.latencies_ms, 99)

    def summary(self) -> dict[str, Any]:
        return {"version": self.version, "requests": self.requests, "errors": self.errors,
                "error_rate": round(self.error_rate, 6), "p50_ms": _r(percentile(
                    self.latencies_ms, 50)), "p99_ms": _r(self.p99()),
                "labelled": self.labelled, "correct": self.correct,
                "accuracy": _r(self.accuracy)}


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


def percentile(xs: list[float], q: float) -> float | None:
    """Linear-interpolation percentile (numpy's default), without importing numpy."""
    if not xs:
        return None
    s = sorted(xs)
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)
