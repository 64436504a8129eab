"""Fetch new data from a local path, http(s), or any fsspec/DVC-supported URL."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

from mlci.errors import MlciError

MAX_BYTES = 20 * 2**30  # refuse to download more than this


def fetch(source: str, dest_dir: Path, timeout: float) -> Path:
    """Copy `source` into dest_dir and return the local file (suffix kept)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    parsed = urlparse(source)
    name = Path(parsed.path).name or "data.csv"
    dest = dest_dir / name
    if parsed.scheme in ("", "file"):
        src = Path(parsed.path if parsed.scheme == "file" else source).expanduser()
        if not src.is_file():
            raise MlciError(f"--source {source}: file not found")
        shutil.copyfile(src, dest)
        return dest
    if parsed.scheme in ("http", "https"):
        return _http(source, dest, timeout)
    return _fsspec(source, dest, timeout)


def _http(url: str, dest: Path, timeout: float) -> Path:
    import requests

    try:
        with requests.get(url, stream=True, timeout=(min(timeout, 10), timeout)) as r:
            if r.status_code >= 400:
                raise MlciError(f"--source {url}: HTTP {r.status_code}")
            size = 0
            with open(dest, "wb") as fh:
                for block in r.iter_content(1 << 20):
                    size += len(block)
                    if size > MAX_BYTES:
                        raise MlciError(f"--source {url}: larger than {MAX_BYTES} bytes")
                    fh.write(block)
    except requests.Timeout:
        dest.unlink(missing_ok=True)
        raise MlciError(f"--source {url}: timed out after {timeout:g}s") from None
    except requests.RequestException as exc:
        dest.unlink(missing_ok=True)
        raise MlciError(f"--source {url}: {type(exc).__name__}") from None
    return dest


def _fsspec(url: str, dest: Path, timeout: float) -> Path:
    try:
        import fsspec
    except ImportError:
        raise MlciError(f"--source {url}: install fsspec (or mlci[dvc]) for this URL") from None
    try:
        with fsspec.open(url, "rb") as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    except (ValueError, ImportError) as exc:  # unknown protocol or missing plugin
        raise MlciError(f"--source {url}: {str(exc).splitlines()[0]}") from None
    except FileNotFoundError:
        raise MlciError(f"--source {url}: not found") from None
    except OSError as exc:
        raise MlciError(f"--source {url}: {type(exc).__name__}: {exc}") from None
    return dest
