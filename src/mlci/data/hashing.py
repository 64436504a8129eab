"""The hash recorded for each data file: DVC's md5 when the file is DVC-tracked, else sha256."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from mlci.io import sha256_file


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


def data_hash(path: Path) -> dict[str, str]:
    """{"algo": "dvc-md5"|"md5"|"sha256", "value": ...}.

    For a DVC-tracked file the value is the md5 of its bytes, which is DVC 3's hash: it equals
    the `.dvc` record once `dvc add` ran ("dvc-md5"); "md5" says the file changed since.
    """
    recorded = dvc_hash(path)
    if recorded:
        actual = md5_file(path)
        return {"algo": "dvc-md5" if actual == recorded else "md5", "value": actual}
    return {"algo": "sha256", "value": sha256_file(path)}
