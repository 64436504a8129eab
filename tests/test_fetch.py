"""`data update --source` reads only allowed sources: real HTTP servers on 127.0.0.1/127.0.0.2.

Before: a local secrets file was read and its first line quoted in the report, a 302 to an
internal address was followed, the timeout was per read, and a gzip body expanded unchecked.
"""

from __future__ import annotations

import gzip
import http.server
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.loopback import serving

from mlci.data.fetch import FetchPolicy, fetch, redact
from mlci.errors import MlciError

CSV = b"a,b\n1,2\n"
SECRET = b"INTERNAL_TOKEN=s3cr3t-value\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    """A data server: /ok.csv, /redirect-internal (302 elsewhere), /trickle.csv (one byte per
    0.2 s), /bomb.csv (gzip Content-Encoding, 200 kB that expand to 64 MB)."""

    internal = ""
    bomb = gzip.compress(b"0" * (64 << 20), compresslevel=9)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/ok.csv":
            self._send(CSV)
        elif self.path == "/secret.csv":
            self._send(SECRET)
        elif self.path == "/redirect-internal.csv":
            self.send_response(302)
            self.send_header("Location", self.internal + "/secret.csv")
            self.end_headers()
        elif self.path == "/trickle.csv":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b"1")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
        elif self.path == "/bomb.csv":
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(self.bomb)))
            self.end_headers()
            self.wfile.write(self.bomb)
        else:
            self.send_response(404)
            self.end_headers()

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(host: str) -> Iterator[str]:
    with serving(_Handler, host) as url:
        yield url


@pytest.fixture
def internal() -> Iterator[str]:
    """An 'internal' service on 127.0.0.2 holding a secret."""
    yield from _serve("127.0.0.2")


@pytest.fixture
def public(internal: str) -> Iterator[str]:
    """The allowed data server on 127.0.0.1 (standing in for a public host)."""
    _Handler.internal = internal
    yield from _serve("127.0.0.1")


def policy(**kw) -> FetchPolicy:
    base = {"schemes": ("http", "https", "file"), "hosts": ("127.0.0.1",),
            "private_addresses": ("127.0.0.1",), "timeout": 5.0}
    return FetchPolicy(**{**base, **kw})


def test_an_allowed_source_is_fetched(public: str, tmp_path: Path) -> None:
    assert fetch(f"{public}/ok.csv", tmp_path, policy()).read_bytes() == CSV


def test_a_host_not_in_the_allow_list_is_refused(public: str, tmp_path: Path) -> None:
    with pytest.raises(MlciError, match="not in data_update.fetch.hosts"):
        fetch(f"{public}/ok.csv", tmp_path, policy(hosts=("data.example.com",)))


def test_loopback_is_refused_unless_listed(public: str, tmp_path: Path) -> None:
    with pytest.raises(MlciError, match="non-public address 127.0.0.1"):
        fetch(f"{public}/ok.csv", tmp_path, policy(private_addresses=()))


def test_a_scheme_not_allowed_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MlciError, match="scheme 'http' is not in"):
        fetch("http://127.0.0.1:9/ok.csv", tmp_path, policy(schemes=("https",)))


@pytest.mark.parametrize("hosts", [("127.0.0.1",), ("127.0.0.1", "127.0.0.2")])
def test_a_redirect_to_an_internal_address_is_not_followed(public: str, tmp_path: Path,
                                                           hosts: tuple[str, ...]) -> None:
    with pytest.raises(MlciError, match="refused") as exc:
        fetch(f"{public}/redirect-internal.csv", tmp_path / "in", policy(hosts=hosts))
    assert "s3cr3t" not in str(exc.value)
    assert not any(p.read_bytes() == SECRET for p in tmp_path.rglob("*") if p.is_file())


@pytest.mark.exclusive  # timed
def test_the_timeout_is_a_total_deadline(public: str, tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(MlciError, match="timed out after 1.5s"):
        fetch(f"{public}/trickle.csv", tmp_path, policy(timeout=1.5))
    assert time.monotonic() - t0 < 3.5  # a per-read timeout ran for 200 s here
    assert list(tmp_path.iterdir()) == []


def test_a_gzip_bomb_stops_at_max_bytes(public: str, tmp_path: Path) -> None:
    with pytest.raises(MlciError, match="more than 1000000 bytes"):
        fetch(f"{public}/bomb.csv", tmp_path, policy(max_bytes=1_000_000))
    assert list(tmp_path.iterdir()) == []


def test_local_paths_only_under_the_allowed_roots(tmp_path: Path) -> None:
    secrets = tmp_path / "home" / ".secrets.csv"
    secrets.parent.mkdir()
    secrets.write_bytes(SECRET)
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "new.csv").write_bytes(CSV)
    (repo / "data" / "link.csv").symlink_to(secrets)
    p = policy(local_roots=(repo,))
    assert fetch(str(repo / "data" / "new.csv"), tmp_path / "in", p).read_bytes() == CSV
    for src in (str(secrets), f"file://{secrets}", str(repo / "data" / "link.csv"),
                str(repo / "data" / ".." / ".." / "home" / ".secrets.csv")):
        with pytest.raises(MlciError, match="outside data_update.fetch.local_roots"):
            fetch(src, tmp_path / "in2", p)
    assert not (tmp_path / "in2").exists() or list((tmp_path / "in2").iterdir()) == []


def test_redact_drops_credentials_and_query() -> None:
    assert redact("https://user:pw@h.example:8443/d.csv?token=x#f") == \
        "https://h.example:8443/d.csv"


def test_a_parquet_declaring_millions_of_rows_is_refused_before_reading(tmp_path: Path
                                                                       ) -> None:
    """About 20 KB of run-length-encoded nulls that declare 12 million rows: within every
    byte limit (the footer's uncompressed size is small), and hundreds of MB once read."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    src = tmp_path / "src" / "bomb.parquet"
    src.parent.mkdir()
    pq.write_table(pa.table({"a": pa.nulls(12_000_000, pa.int8())}), src,
                   row_group_size=1 << 30, use_dictionary=False)
    assert src.stat().st_size < 100_000
    dest = tmp_path / "incoming"
    with pytest.raises(MlciError, match=r"declares 12000000 rows \(data_update.fetch.max_rows"):
        fetch(str(src), dest, policy(local_roots=(tmp_path,)))
    assert list(dest.iterdir()) == []  # the refused file is not left behind
    with pytest.raises(MlciError, match="declares 12000000 values"):
        fetch(str(src), dest, policy(local_roots=(tmp_path,), max_rows=20_000_000,
                                     max_cells=1_000_000))
    assert fetch(str(src), dest, policy(local_roots=(tmp_path,), max_rows=20_000_000,
                                        max_cells=20_000_000)).is_file()
