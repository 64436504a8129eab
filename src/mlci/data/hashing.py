"""The hash recorded for each data file: DVC's md5 when the file is DVC-tracked, else sha256."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from mlci.io import sha256_file

if TYPE_CHECKING:
    from mlci.config import Config


def dvc_hash(path: Path) -> str | None:
    """md5 from `<file>.dvc` or from a `dvc.lock` out in a parent folder; None if untracked."""
    sidecar = path.with_name(path.name + ".dvc")
    if sidecar.is_file():
        doc = yaml.safe_load(sidecar.read_text(encoding="utf-8")) or {}
        for out in doc.get("outs", []):
            if out.get("path") == path.name and out.get("md5"):
                return str(out["md5"])
    here = path.resolve()
    for folder in here.parents:
        lock = folder / "dvc.lock"
        if lock.is_file():
            doc = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
            rel = os.path.relpath(here, folder)
            for stage in (doc.get("stages") or {}).values():
                for out in stage.get("outs", []):
                    if out.get("path") == rel and out.get("md5"):
                        return str(out["md5"])
        if (folder / ".dvc").is_dir() or (folder / ".git").exists():
            break
    return None


def md5_file(path: Path, chunk: int = 1 << 20) -> str:
    import hashlib

    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def md5_dir(path: Path) -> str:
    """DVC 3's hash of a folder: the md5 of its sorted JSON listing of (relpath, md5) entries,
    with `.dir` appended (dvc_data's Tree.digest)."""
    import hashlib
    import json

    entries = sorted(({"md5": md5_file(p), "relpath": p.relative_to(path).as_posix()}
                      for p in path.rglob("*") if p.is_file()), key=lambda e: e["relpath"])
    blob = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(blob, usedforsecurity=False).hexdigest() + ".dir"


def data_hash(path: Path) -> dict[str, str]:
    """{"algo": "dvc-md5"|"md5"|"sha256", "value": ...}.

    For a DVC-tracked file the value is the md5 of its bytes, which is DVC 3's hash: it equals
    the `.dvc` record once `dvc add` ran ("dvc-md5"); "md5" says the file changed since. A
    folder (an image data set) is hashed as DVC hashes a directory, tracked or not.
    """
    if path.is_dir():
        actual = md5_dir(path)
        return {"algo": "dvc-md5" if dvc_hash(path) == actual else "md5", "value": actual}
    recorded = dvc_hash(path)
    if recorded:
        actual = md5_file(path)
        return {"algo": "dvc-md5" if actual == recorded else "md5", "value": actual}
    return {"algo": "sha256", "value": sha256_file(path)}


def dataset_hash(cfg: Config, which: str) -> dict[str, str]:
    """The hash of `data.train` or `data.golden`: a table of image paths covers the images."""
    if cfg.data.image_size is not None:
        from mlci.data.imageset import content_hash

        return content_hash(cfg, which)
    return data_hash(cfg.resolve(getattr(cfg.data, which)))
