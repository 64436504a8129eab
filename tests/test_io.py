"""Atomic writes keep the file's mode and reach the disk (file and directory fsynced)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mlci import io


def test_rewrite_keeps_the_original_mode(tmp_path: Path) -> None:
    p = tmp_path / "train.csv"
    p.write_text("a,b\n1,2\n")
    p.chmod(0o664)
    io.atomic_write_text(p, "a,b\n3,4\n")
    assert stat.S_IMODE(p.stat().st_mode) == 0o664
    p.chmod(0o755)
    io.atomic_write_bytes(p, b"x")
    assert stat.S_IMODE(p.stat().st_mode) == 0o755


def test_new_file_gets_the_umask_mode_not_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        io.atomic_write_text(tmp_path / "new.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o644


def test_file_and_directory_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:  # records what kind of object each fsync reached, then syncs
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    io.atomic_write_bytes(tmp_path / "sub" / "f.bin", b"data")
    assert synced == ["file", "dir"]
    assert (tmp_path / "sub" / "f.bin").read_bytes() == b"data"


def test_failed_write_leaves_the_original_and_no_temp(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "keep.txt"
    p.write_text("original")

    def boom(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        io.atomic_write_text(p, "new")
    assert p.read_text() == "original"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["keep.txt"]
