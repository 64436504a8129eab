"""`mlci store pull|push`: carry the embedded registry between CI runs without a server.

The packed store (`mlflow.db` and artifacts, see `mlci.registry.store.pack_store`) lives at a
URL: a folder path, or any fsspec/DVC-supported URL such as the bucket of your DVC remote
(`s3://bucket/mlci-store/iris.tar.gz`).

A push is a compare-and-set: `pull` records the digest of the archive it restored
(`<out>/store.pulled.json`), and `push` replaces the archive only while it is still that one
(or still absent). A second job that pulled the same store and pushes after the first is
refused with the reason (nothing is overwritten, its versions are not lost: pull, re-run,
push). On a local path the check and the write hold a file lock; on an object store the
check narrows the window to one upload, so keep a `concurrency` group on the writers too.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import click

from mlci.commands._options import out_option
from mlci.errors import MlciError

if TYPE_CHECKING:
    from collections.abc import Iterator


def _is_local(url: str) -> bool:
    return urlparse(url).scheme in ("", "file")


def _local(url: str) -> Path:
    return Path(urlparse(url).path if url.startswith("file:") else url).expanduser()


def _exists(url: str) -> bool:
    if _is_local(url):
        return _local(url).is_file()
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    return bool(fs.exists(path))


def _download(url: str, dest: Path) -> None:
    """Copy the archive, at most MLCI_STORE_MAX_BYTES (a packed store is never larger
    compressed than unpacked)."""
    from mlci.registry.store import DEFAULT_MAX_BYTES, _limit

    limit = _limit("MLCI_STORE_MAX_BYTES", DEFAULT_MAX_BYTES)
    if _is_local(url):
        src_cm = open(_local(url), "rb")  # noqa: SIM115 - closed by the with below
    else:
        import fsspec

        src_cm = fsspec.open(url, "rb")
    size = 0
    with src_cm as src, open(dest, "wb") as out:
        while block := src.read(1 << 20):
            size += len(block)
            if size > limit:
                raise MlciError(f"--url {url}: larger than {limit} bytes "
                                "(MLCI_STORE_MAX_BYTES)")
            out.write(block)


PULLED = "store.pulled.json"


def _digest(archive: Path) -> str:
    from mlci.io import sha256_file

    return "sha256:" + sha256_file(archive)


def _remote_digest(url: str) -> str | None:
    """The sha256 of the archive at `url`, or None when there is none."""
    if not _exists(url):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "store.tar.gz"
        _download(url, archive)
        return _digest(archive)


def _pulled(out_dir: Path, url: str) -> tuple[bool, str | None]:
    """(whether this --out pulled from `url`, the digest it pulled: None = nothing there)."""
    import json

    p = out_dir / PULLED
    try:
        rec = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False, None
    if not isinstance(rec, dict) or rec.get("url") != url:
        return False, None
    return True, rec.get("digest")


def _record_pulled(out_dir: Path, url: str, digest: str | None) -> None:
    from mlci.io import atomic_write_json

    atomic_write_json(out_dir / PULLED, {"url": url, "digest": digest})


def _upload(src: Path, url: str) -> None:
    if _is_local(url):
        from mlci.io import atomic_write_bytes

        atomic_write_bytes(_local(url), src.read_bytes())
        return
    import fsspec

    with open(src, "rb") as fh, fsspec.open(url, "wb") as out:
        shutil.copyfileobj(fh, out, 1 << 20)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold `<path>.lock` (flock): the compare and the write of a local push are one step."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


url_option = click.option("--store-url", "--url", "url", required=True, envvar="MLCI_STORE_URL",
                          help="Where the packed store lives: a path or an fsspec URL.")


@click.group("store")
def command() -> None:
    """Carry the embedded MLflow store between CI runs (no tracking server needed)."""


@command.command("pull")
@out_option
@url_option
@click.option("--missing-ok", is_flag=True, envvar="MLCI_MISSING_OK",
              help="Exit 0 when nothing was pushed yet (the first run).")
def pull(out_dir: Path, url: str, missing_ok: bool) -> int:
    """Restore the packed store into --out, replacing what is there."""
    from mlci.registry.store import unpack_store

    try:
        present = _exists(url)
    except (OSError, ValueError, ImportError) as exc:
        raise MlciError(f"--url {url}: {str(exc).splitlines()[0]}") from None
    if not present:
        if missing_ok:
            out_dir.mkdir(parents=True, exist_ok=True)
            _record_pulled(out_dir, url, None)
            click.echo(f"no store at {url} yet: starting empty")
            return 0
        raise MlciError(f"--url {url}: no packed store there")
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "store.tar.gz"
        try:
            _download(url, archive)
        except (OSError, ValueError) as exc:
            raise MlciError(f"--url {url}: {str(exc).splitlines()[0]}") from None
        m = unpack_store(archive, out_dir, replace=True)
        _record_pulled(out_dir, url, _digest(archive))
    click.echo(f"restored the store from {url} into {m['restored_to']}")
    return 0


@command.command("push")
@out_option
@url_option
def push(out_dir: Path, url: str) -> int:
    """Pack --out's store and upload it, only if the store at --url is still the one this
    --out pulled (or there is none yet): a stale store is refused, nothing is overwritten."""
    from mlci.registry.store import pack_store

    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "store.tar.gz"
        pack_store(out_dir, archive)
        lock = contextlib.nullcontext() if not _is_local(url) else _file_lock(_local(url))
        try:
            with lock:
                pulled, base = _pulled(out_dir, url)
                now = _remote_digest(url)
                if now is not None and (not pulled or now != base):
                    raise MlciError(
                        f"--url {url}: the store there changed since "
                        + ("this job pulled it" if pulled else "it was never pulled into "
                           f"{out_dir}") + " (another job pushed): nothing was pushed; pull "
                        "it, re-run this job's registry steps, then push")
                _upload(archive, url)
        except (OSError, ValueError) as exc:
            raise MlciError(f"--url {url}: {str(exc).splitlines()[0]}") from None
        _record_pulled(out_dir, url, _digest(archive))
    click.echo(f"pushed the store in {out_dir} to {url}")
    return 0
