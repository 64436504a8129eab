"""Carry the embedded store (`<out>/mlflow.db` and artifacts) between CI runs as one archive."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from mlci.errors import MlciError
from mlci.errors import first_line as _first_line

STORE_SCHEMA = "mlci.store/1"
DEFAULT_MAX_BYTES = 8 * 2**30
DEFAULT_MAX_MEMBERS = 200_000


def pack_store(out_dir: Path, archive: Path) -> dict[str, Any]:
    """Write `<out>/mlflow.db` (a consistent online copy) and `<out>/artifacts/` to a tar.gz,
    with a manifest naming the folder it came from. The archive appears whole or not at all."""
    import sqlite3
    import tarfile
    import tempfile

    from mlci.io import atomic_write_bytes, sha256_file

    out_dir = Path(out_dir).resolve()
    db = out_dir / "mlflow.db"
    if not db.is_file():
        raise MlciError(f"{db}: no embedded store to pack")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "mlflow.db"
        src, dst = sqlite3.connect(db), sqlite3.connect(copy)
        try:
            src.backup(dst)  # consistent even while another process writes
        finally:
            src.close()
            dst.close()
        manifest = {"schema": STORE_SCHEMA, "root": str(out_dir), "db_sha256": sha256_file(copy),
                    "created": time.time()}
        (Path(tmp) / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        tar_path = Path(tmp) / "store.tar.gz"
        with tarfile.open(tar_path, "w:gz") as tar:
            tar.add(Path(tmp) / "manifest.json", arcname="manifest.json")
            tar.add(copy, arcname="mlflow.db")
            if (out_dir / "artifacts").is_dir():
                tar.add(out_dir / "artifacts", arcname="artifacts")
        atomic_write_bytes(archive, tar_path.read_bytes())
    return manifest


def unpack_store(archive: Path, out_dir: Path, *, replace: bool = False) -> dict[str, Any]:
    """Restore a packed store into `<out>`, rewriting the absolute artifact paths recorded in
    it when the folder moved (a new runner, another checkout path)."""
    import shutil
    import sqlite3
    import tarfile
    import tempfile

    from mlci.io import sha256_file

    archive, out_dir = Path(archive), Path(out_dir).resolve()
    if not archive.is_file():
        raise MlciError(f"{archive}: no packed store")
    if (out_dir / "mlflow.db").exists() and not replace:
        raise MlciError(f"{out_dir / 'mlflow.db'} exists; refusing to overwrite it "
                        "(pass --replace)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".mlci-unpack-") as tmp:
        t = Path(tmp)
        try:
            with tarfile.open(archive, "r:gz") as tar:
                check_members(archive, tar)
                tar.extractall(t, filter="data")
            manifest = json.loads((t / "manifest.json").read_text(encoding="utf-8"))
        except (tarfile.TarError, OSError, ValueError) as exc:
            raise MlciError(f"{archive}: not a packed mlci store ({_first_line(exc)})") from None
        if manifest.get("schema") != STORE_SCHEMA:
            raise MlciError(f"{archive}: not a packed mlci store (schema)")
        if sha256_file(t / "mlflow.db") != manifest.get("db_sha256"):
            raise MlciError(f"{archive}: database digest mismatch; archive damaged")
        con = sqlite3.connect(t / "mlflow.db")
        try:
            if con.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise MlciError(f"{archive}: database fails its integrity check")
            old, new = manifest["root"].rstrip("/") + "/", str(out_dir).rstrip("/") + "/"
            rewritten = _rewrite_paths(con, old, new) if old != new else 0
            con.commit()
        finally:
            con.close()
        out_dir.mkdir(exist_ok=True)
        for name in ("mlflow.db", "artifacts"):
            dest = out_dir / name
            if dest.is_dir():
                shutil.rmtree(dest)
            elif dest.exists():
                dest.unlink()
            if (t / name).exists():
                os.replace(t / name, dest)
        (out_dir / "mlflow.db.ready").write_text("1\n")
    return {**manifest, "restored_to": str(out_dir), "rewritten": rewritten}


def _limit(var: str, default: int) -> int:
    try:
        return int(os.environ.get(var) or default)
    except ValueError:
        raise MlciError(f"{var}={os.environ[var]!r} is not a whole number") from None


def check_members(archive: Path, tar) -> None:
    """Before extracting: only manifest.json, mlflow.db and artifacts/..., regular files and
    folders, at most MLCI_STORE_MAX_MEMBERS members and MLCI_STORE_MAX_BYTES bytes (sizes
    from the headers, which are what extraction writes). Reading the headers decompresses the
    stream once but writes nothing."""
    max_bytes = _limit("MLCI_STORE_MAX_BYTES", DEFAULT_MAX_BYTES)
    max_members = _limit("MLCI_STORE_MAX_MEMBERS", DEFAULT_MAX_MEMBERS)
    total = 0
    for count, m in enumerate(tar, start=1):
        if count > max_members:
            raise MlciError(f"{archive}: more than {max_members} members "
                            "(MLCI_STORE_MAX_MEMBERS)")
        parts = Path(m.name).parts
        if (m.name.startswith("/") or ".." in parts or not parts
                or (parts[0] not in ("artifacts", ".") and m.name not in ("manifest.json",
                                                                          "mlflow.db"))):
            raise MlciError(f"{archive}: unexpected member {m.name[:80]!r}; not a packed store")
        if not (m.isfile() or m.isdir()):
            raise MlciError(f"{archive}: member {m.name[:80]!r} is not a regular file")
        total += m.size
        if total > max_bytes:
            raise MlciError(f"{archive}: more than {max_bytes} bytes unpacked "
                            "(MLCI_STORE_MAX_BYTES)")


def _rewrite_paths(con, old: str, new: str) -> int:
    n = 0
    tables = [r[0] for r in con.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
    for table in tables:
        cols = [r[1] for r in con.execute(f'PRAGMA table_info("{table}")')
                if "CHAR" in (r[2] or "").upper() or "TEXT" in (r[2] or "").upper()]
        for col in cols:
            cur = con.execute(
                f'UPDATE "{table}" SET "{col}" = REPLACE("{col}", ?, ?) '
                f'WHERE instr("{col}", ?) > 0', (old, new, old))
            n += cur.rowcount
    return n


def _main(argv: list[str] | None = None) -> int:
    """`python -m mlci.registry.store pack OUT ARCHIVE` / `unpack ARCHIVE OUT [--replace]
    [--missing-ok]`: carry the embedded store between CI runs."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m mlci.registry.store")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="pack <out>/mlflow.db and artifacts into an archive")
    a.add_argument("out_dir", type=Path)
    a.add_argument("archive", type=Path)
    b = sub.add_parser("unpack", help="restore a packed store into <out>")
    b.add_argument("archive", type=Path)
    b.add_argument("out_dir", type=Path)
    b.add_argument("--replace", action="store_true", help="overwrite an existing store")
    b.add_argument("--missing-ok", action="store_true",
                   help="exit 0 when the archive does not exist (first run)")
    args = p.parse_args(argv)
    try:
        if args.cmd == "pack":
            m = pack_store(args.out_dir, args.archive)
            print(f"packed {args.out_dir} into {args.archive} (db sha256 {m['db_sha256'][:12]})")
        else:
            if args.missing_ok and not args.archive.is_file():
                print(f"{args.archive}: no packed store yet; starting empty")
                return 0
            m = unpack_store(args.archive, args.out_dir, replace=args.replace)
            print(f"restored {args.archive} into {m['restored_to']} "
                  f"({m['rewritten']} paths rewritten from {m['root']})")
    except MlciError as exc:
        print(f"mlci: error: {exc.format_message()}", file=__import__("sys").stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
