"""`mlci store pull|push`: carry the embedded registry between CI runs without a server.

The packed store (`mlflow.db` and artifacts, see `mlci.registry.store.pack_store`) lives at a
URL: a folder path, or any fsspec/DVC-supported URL such as the bucket of your DVC remote
(`s3://bucket/mlci-store/iris.tar.gz`). Serialise the writers with a `concurrency` group.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import click

from mlci.commands._options import out_option
from mlci.errors import MlciError


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


def _upload(src: Path, url: str) -> None:
    if _is_local(url):
        from mlci.io import atomic_write_bytes

        atomic_write_bytes(_local(url), src.read_bytes())
        return
    import fsspec

    with open(src, "rb") as fh, fsspec.open(url, "wb") as out:
        shutil.copyfileobj(fh, out, 1 << 20)


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
    click.echo(f"restored the store from {url} into {m['restored_to']}")
    return 0


@command.command("push")
@out_option
@url_option
def push(out_dir: Path, url: str) -> int:
    """Pack --out's store and upload it (the upload replaces the previous one whole)."""
    from mlci.registry.store import pack_store

    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "store.tar.gz"
        pack_store(out_dir, archive)
        try:
            _upload(archive, url)
        except (OSError, ValueError) as exc:
            raise MlciError(f"--url {url}: {str(exc).splitlines()[0]}") from None
    click.echo(f"pushed the store in {out_dir} to {url}")
    return 0
