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


def data_hash(path: Path) -> dict[str, str]:
    """{"algo": "dvc-md5"|"sha256", "value": ...}."""
    h = dvc_hash(path)
    if h:
        return {"algo": "dvc-md5", "value": h}
    return {"algo": "sha256", "value": sha256_file(path)}
