"""Fetch new data for `mlci data update` from an allowed source only.

A source is untrusted input (SECURITY.md): it may name a secrets file on the runner, an
internal address, or a server that redirects there, trickles bytes, or sends a gzip bomb. So:

- the scheme must be in `data_update.fetch.schemes`; a local path must resolve (symlinks
  followed) under one of `local_roots`; a remote host must be in `hosts` (exact name, or a
  `.suffix` for its subdomains);
- every address a host resolves to, at every redirect hop (followed by hand, at most
  MAX_REDIRECTS), and the address actually connected to must be public unless it is listed
  in `private_addresses` (IPs or CIDRs);
- `timeout` is a deadline for the whole fetch, not per read;
- at most `max_bytes` are written *after* content decoding (a gzip `Content-Encoding` is
  counted decompressed), and a Parquet file's uncompressed size, rows (`max_rows`) and
  values (`max_cells`, counted per column chunk) are checked from its footer before anything
  reads it: a few hundred KB of run-length-encoded columns can declare 30 million rows.
- a refused file is deleted from the download folder (`<out>/incoming/`).

A refused source is named in errors by its redacted form only (no credentials, no query),
and nothing it returned is ever quoted.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlparse

from mlci.errors import MlciError

MAX_REDIRECTS = 5
CHUNK = 1 << 16


@dataclass(frozen=True)
class FetchPolicy:
    schemes: tuple[str, ...] = ("file", "https")
    hosts: tuple[str, ...] = ()
    private_addresses: tuple[str, ...] = ()
    local_roots: tuple[Path, ...] = field(default_factory=tuple)
    max_bytes: int = 2 * 2**30
    timeout: float = 60.0
    max_rows: int = 10_000_000
    max_cells: int = 100_000_000


def redact(source: str) -> str:
    """The source without userinfo, query or fragment (what reports and errors may show)."""
    p = urlparse(source)
    if p.scheme in ("", "file") or not p.netloc:
        return p.path if p.scheme == "file" else source
    host = p.hostname or ""
    port = f":{p.port}" if p.port else ""
    return f"{p.scheme}://{host}{port}{p.path}"


def _refuse(source: str, why: str) -> MlciError:
    return MlciError(f"--source {redact(source)}: refused: {why}")


def fetch(source: str, dest_dir: Path, policy: FetchPolicy) -> Path:
    """Copy an allowed `source` into dest_dir and return the local file (suffix kept)."""
    parsed = urlparse(source)
    scheme = parsed.scheme.lower() or "file"
    if len(scheme) == 1:  # a Windows drive letter is a path, not a scheme
        scheme = "file"
    if scheme not in policy.schemes:
        raise _refuse(source, f"scheme {scheme!r} is not in data_update.fetch.schemes "
                              f"({', '.join(policy.schemes) or 'none'})")
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / (Path(parsed.path).name or "data.csv")
    if scheme == "file":
        _local(source, parsed.path if parsed.scheme == "file" else source, dest, policy)
    elif scheme in ("http", "https"):
        _http(source, dest, policy)
    else:
        _check_host(source, parsed.hostname, policy)
        _fsspec(source, dest, policy)
    check_uncompressed(dest, source, policy.max_bytes, policy.max_rows, policy.max_cells)
    return dest


def _local(source: str, path: str, dest: Path, policy: FetchPolicy) -> None:
    src = Path(path).expanduser().resolve()
    roots = [r.resolve() for r in policy.local_roots]
    if not any(src == r or r in src.parents for r in roots):
        raise _refuse(source, "local path outside data_update.fetch.local_roots")
    if not src.is_file():
        raise MlciError(f"--source {source}: file not found")
    if src.stat().st_size > policy.max_bytes:
        raise _refuse(source, f"larger than {policy.max_bytes} bytes")
    shutil.copyfile(src, dest)


def _host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    for a in allowed:
        a = a.lower().rstrip(".")
        if a.startswith("*."):
            a = a[1:]
        if host == a or (a.startswith(".") and host.endswith(a)):
            return True
    return False


def _private_ok(addr: str, policy: FetchPolicy) -> bool:
    ip = ipaddress.ip_address(addr)
    if ip.is_global:
        return True
    return any(ip in ipaddress.ip_network(net, strict=False) for net in policy.private_addresses)


def _check_host(source: str, host: str | None, policy: FetchPolicy) -> None:
    if not host:
        raise _refuse(source, "no host")
    if not _host_allowed(host, policy.hosts):
        raise _refuse(source, f"host {host!r} is not in data_update.fetch.hosts")


def _check_addresses(source: str, host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise MlciError(f"--source {redact(source)}: cannot resolve {host!r}") from None
    return sorted({str(i[4][0]) for i in infos})


def _check_url(url: str, policy: FetchPolicy) -> None:
    p = urlparse(url)
    if p.scheme not in policy.schemes or p.scheme not in ("http", "https"):
        raise _refuse(url, f"scheme {p.scheme!r} is not allowed")
    _check_host(url, p.hostname, policy)
    for addr in _check_addresses(url, p.hostname or "", p.port or 443):
        if not _private_ok(addr, policy):
            raise _refuse(url, f"{p.hostname} resolves to the non-public address {addr} "
                               "(not in data_update.fetch.private_addresses)")


def _peer(r) -> str | None:
    """The address the response actually came from (DNS may have changed since the check)."""
    for obj in (getattr(r.raw, "_connection", None), getattr(r.raw, "connection", None)):
        sock = getattr(obj, "sock", None)
        if sock is not None:
            try:
                return sock.getpeername()[0]
            except OSError:
                return None
    return None


def _http(source: str, dest: Path, policy: FetchPolicy) -> None:
    import requests

    deadline = time.monotonic() + policy.timeout
    url = source
    with requests.Session() as s:
        s.trust_env = False  # no proxy or netrc from the environment: the checks are ours
        for _hop in range(MAX_REDIRECTS + 1):
            _check_url(url, policy)
            left = deadline - time.monotonic()
            if left <= 0:
                raise _timeout(source, policy)
            try:
                r = s.get(url, stream=True, allow_redirects=False,
                          timeout=(min(left, 10), min(left, 10)))
            except requests.Timeout:
                raise _timeout(source, policy) from None
            except requests.RequestException as exc:
                raise MlciError(f"--source {redact(source)}: {type(exc).__name__}") from None
            with r:
                peer = _peer(r)
                if peer is not None and not _private_ok(peer, policy):
                    raise _refuse(url, f"connected to the non-public address {peer}")
                if r.is_redirect:
                    url = urljoin(url, r.headers.get("location", ""))
                    continue
                if r.status_code >= 400:
                    raise MlciError(f"--source {redact(source)}: HTTP {r.status_code}")
                _stream(r, dest, source, policy, deadline)
                return
    raise _refuse(source, f"more than {MAX_REDIRECTS} redirects")


def _stream(r, dest: Path, source: str, policy: FetchPolicy, deadline: float) -> None:
    """Write the decoded body; stop at the deadline or past max_bytes (removing the file)."""
    timer = threading.Timer(max(deadline - time.monotonic(), 0), _cut, args=(r,))
    timer.daemon = True
    timer.start()
    size = 0
    try:
        with open(dest, "wb") as fh:
            while block := r.raw.read1(CHUNK, decode_content=True) if hasattr(
                    r.raw, "read1") else r.raw.read(CHUNK, decode_content=True):
                size += len(block)
                if size > policy.max_bytes:
                    raise _refuse(source, f"more than {policy.max_bytes} bytes "
                                          "(after decompression)")
                if time.monotonic() > deadline:
                    raise _timeout(source, policy)
                fh.write(block)
        if time.monotonic() > deadline:
            raise _timeout(source, policy)
    except MlciError:
        dest.unlink(missing_ok=True)
        raise
    except Exception as exc:  # noqa: BLE001 - cut by the deadline, reset, bad encoding
        dest.unlink(missing_ok=True)
        if time.monotonic() >= deadline:
            raise _timeout(source, policy) from None
        raise MlciError(f"--source {redact(source)}: {type(exc).__name__}") from None
    finally:
        timer.cancel()


def _timeout(source: str, policy: FetchPolicy) -> MlciError:
    return MlciError(f"--source {redact(source)}: timed out after {policy.timeout:g}s "
                     "(total deadline)")


def _cut(r) -> None:
    """At the deadline: shut the socket so a blocked read returns."""
    for obj in (getattr(r.raw, "_connection", None), getattr(r.raw, "connection", None)):
        sock = getattr(obj, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return


def _fsspec(url: str, dest: Path, policy: FetchPolicy) -> None:
    try:
        import fsspec
    except ImportError:
        raise MlciError(f"--source {redact(url)}: install fsspec (or mlci[dvc]) for this "
                        "URL") from None
    size = 0
    try:
        with fsspec.open(url, "rb") as src, open(dest, "wb") as out:
            while block := src.read(CHUNK):
                size += len(block)
                if size > policy.max_bytes:
                    raise _refuse(url, f"more than {policy.max_bytes} bytes")
                out.write(block)
    except MlciError:
        dest.unlink(missing_ok=True)
        raise
    except (ValueError, ImportError) as exc:  # unknown protocol or missing plugin
        raise MlciError(f"--source {redact(url)}: {type(exc).__name__}") from None
    except FileNotFoundError:
        raise MlciError(f"--source {redact(url)}: not found") from None
    except OSError as exc:
        dest.unlink(missing_ok=True)
        raise MlciError(f"--source {redact(url)}: {type(exc).__name__}") from None


def check_uncompressed(path: Path, source: str, limit: int, max_rows: int = 10_000_000,
                       max_cells: int = 100_000_000) -> None:
    """A Parquet file declares its uncompressed size, rows and values in its footer: check
    them before reading (a few hundred KB of run-length-encoded columns can expand to
    gigabytes). The values are summed over every column chunk, so a footer cannot hide
    them behind a small row count."""
    if path.suffix.lower() not in (".parquet", ".pq"):
        return
    try:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path).metadata
    except ImportError:
        return  # reading it needs pyarrow too, and fails with its own message
    except Exception:  # noqa: BLE001 - not Parquet: read_table says so
        return
    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    total = sum(g.total_byte_size for g in groups)
    rows = max(meta.num_rows, sum(g.num_rows for g in groups))
    cells = sum(g.column(j).num_values for g in groups for j in range(g.num_columns))
    why = (f"Parquet data of {total} bytes uncompressed exceeds {limit} bytes"
           if total > limit else
           f"Parquet file declares {rows} rows (data_update.fetch.max_rows: {max_rows})"
           if rows > max_rows else
           f"Parquet file declares {cells} values (data_update.fetch.max_cells: {max_cells})"
           if cells > max_cells else None)
    if why is not None:
        path.unlink(missing_ok=True)
        raise _refuse(source, why)
