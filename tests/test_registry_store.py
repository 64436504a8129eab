"""Carrying the embedded store between CI runs: pack at the end of one run, unpack at the start
of the next (another runner, another checkout path), and the registry, its audit trail and
its model artifacts all still work there."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import make_project
from test_registry import NAME, add_version, champion, client_for, mlci, packed  # noqa: F401

from mlci.errors import MlciError
from mlci.registry import store


def store_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlci.registry.store", *args], capture_output=True,
                          text=True, timeout=120)


def test_store_survives_a_move_to_another_path(tmp_path: Path, packed: Path) -> None:  # noqa: F811
    # run 1: restore nothing (first run), use the store, pack it
    first = make_project(tmp_path / "run1" / "iris")
    r = store_cli("unpack", str(tmp_path / "missing.tar.gz"), str(first / ".mlci"),
                  "--missing-ok")
    assert r.returncode == 0 and "starting empty" in r.stdout
    store.unpack_store(packed, first / ".mlci")
    assert mlci("promote", "--to", "champion", cwd=first).code == 0
    v2 = add_version(first, evaluated_against="")
    archive = tmp_path / "artifact" / "mlci-store.tar.gz"
    r = store_cli("pack", str(first / ".mlci"), str(archive))
    assert r.returncode == 0, r.stderr
    shutil.rmtree(tmp_path / "run1")  # the runner is gone

    # run 2: a fresh checkout somewhere else
    second = make_project(tmp_path / "elsewhere" / "checkout" / "iris")
    r = store_cli("unpack", str(archive), str(second / ".mlci"))
    assert r.returncode == 0, r.stderr
    assert "paths rewritten" in r.stdout
    db = (second / ".mlci" / "mlflow.db").read_bytes()
    assert str(tmp_path / "run1").encode() not in db
    assert champion(second) == "1"
    # promoting v2 re-scores both models: their artifacts must load from the new place
    r = mlci("promote", "--to", "champion", "--version", v2, "--json", cwd=second)
    assert r.code == 0, r.err
    checks = json.loads(r.out)["checks"]
    assert any(c["check"].startswith("re-evaluated") for c in checks)
    assert all(c["passed"] for c in checks)
    evs = json.loads(mlci("history", NAME, "--json", cwd=second).out)
    assert [(e["from_version"], e["to_version"]) for e in evs] == [(None, "1"), ("1", v2)]
    d = json.loads(mlci("lineage", f"{NAME}@champion", "--json", cwd=second).out)
    assert d["validation"]["link"].startswith((second / ".mlci").resolve().as_uri())

    # unpacking over a store refuses unless asked; a damaged archive is refused
    r = store_cli("unpack", str(archive), str(second / ".mlci"))
    assert r.returncode == 2 and "refusing to overwrite" in r.stderr
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(MlciError, match="not a packed mlci store"):
        store.unpack_store(bad, tmp_path / "x" / ".mlci")
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(tampered, "w:gz") as dst:
        for m in src.getmembers():
            f = src.extractfile(m) if m.isfile() else None
            if m.name == "mlflow.db" and f is not None:
                data = bytearray(f.read())
                data[-100] ^= 0xFF
                m.size = len(data)
                dst.addfile(m, io.BytesIO(bytes(data)))
            else:
                dst.addfile(m, f)
    with pytest.raises(MlciError, match="digest mismatch"):
        store.unpack_store(tampered, tmp_path / "y" / ".mlci")
    assert not (tmp_path / "y" / ".mlci").exists()
    assert list((tmp_path / "y").iterdir()) == []
