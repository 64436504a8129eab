"""`store pull` checks a packed store before extracting anything: members, types, sizes.

Before: a 300 kB archive extracted 296 MB before any check."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from mlci.errors import MlciError
from mlci.registry import store


def _archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        m = json.dumps({"schema": store.STORE_SCHEMA, "root": "/x", "db_sha256": "0"}).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(m)
        tar.addfile(info, io.BytesIO(m))
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, size: int) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = size
    return info, b"\0" * size


def _link(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info, None


@pytest.mark.parametrize(("members", "message"), [
    ([_file("mlflow.db", 30 << 20)], "more than 10485760 bytes"),
    ([_file("artifacts/../../escape.txt", 10)], "unexpected member"),
    ([_file("/abs/path", 10)], "unexpected member"),
    ([_file("other.txt", 10)], "unexpected member"),
    ([_link("artifacts/l", "/etc/passwd")], "not a regular file"),
    ([_file(f"artifacts/{i}", 0) for i in range(60)], "more than 50 members"),
], ids=["too-big", "traversal", "absolute", "stray", "symlink", "too-many"])
def test_refused_before_anything_is_extracted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              members, message: str) -> None:
    monkeypatch.setenv("MLCI_STORE_MAX_BYTES", str(10 << 20))
    monkeypatch.setenv("MLCI_STORE_MAX_MEMBERS", "50")
    archive = _archive(tmp_path / "a.tar.gz", members)
    out = tmp_path / "proj" / ".mlci"
    with pytest.raises(MlciError, match=message):
        store.unpack_store(archive, out)
    assert not out.exists()
    assert sorted(p.name for p in (tmp_path / "proj").iterdir()) == []  # no temp left
    assert not (tmp_path / "escape.txt").exists()
