"""DVC as the data layer: set-up, tracking, push, and cache bookkeeping for rollbacks.

The `dvc` command line is used (from the same environment as mlci when installed there):
it is DVC's stable interface and keeps DVC's import cost out of the mlci process.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from mlci.errors import MlciError


def dvc_exe() -> str:
    here = Path(sys.executable).with_name("dvc")
    if here.exists():
        return str(here)
    found = shutil.which("dvc")
    if not found:
        raise MlciError("dvc is not installed (pip install 'mlci[dvc]')")
    return found


def run(args: list[str], cwd: Path, timeout: float = 600) -> str:
    try:
        p = subprocess.run([dvc_exe(), *args], cwd=cwd, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MlciError(f"dvc {' '.join(args)}: timed out after {timeout:.0f}s") from None
    if p.returncode != 0:
        msg = [m.strip() for m in (p.stderr + "\n" + p.stdout).splitlines() if m.strip()]
        detail = next((m for m in msg if m.startswith("ERROR")), msg[-1] if msg else "")
        detail = detail.removeprefix("ERROR:").strip() or f"exit code {p.returncode}"
        raise MlciError(f"dvc {' '.join(args)} failed: {detail}")
    return p.stdout


def repo_root(start: Path) -> Path | None:
    for folder in [start.resolve(), *start.resolve().parents]:
        if (folder / ".dvc").is_dir():
            return folder
    return None


def git_root(start: Path) -> Path | None:
    for folder in [start.resolve(), *start.resolve().parents]:
        if (folder / ".git").exists():
            return folder
    return None


def init(root: Path, remote: str | None, remote_name: str = "storage") -> list[str]:
    """`dvc init` when absent, and a default remote. Returns what was done."""
    done = []
    if repo_root(root) is None:
        run(["init", "-q"] + ([] if git_root(root) else ["--no-scm"]), cwd=root)
        done.append("dvc init")
    if remote:
        run(["remote", "add", "-f", "-d", remote_name, remote], cwd=root)
        done.append(f"remote {remote_name} -> {remote} (default)")
    return done


def is_tracked(path: Path) -> bool:
    return path.with_name(path.name + ".dvc").is_file()


def add(paths: list[Path], cwd: Path) -> None:
    """Track files with DVC; files Git tracked so far are handed over (`git rm --cached`)."""
    for p in paths:
        if git_root(cwd) and subprocess.run(
            ["git", "ls-files", "--error-unmatch", str(p)], cwd=cwd, capture_output=True
        ).returncode == 0:
            subprocess.run(["git", "rm", "-q", "--cached", str(p)], cwd=cwd, check=True,
                           capture_output=True)
    run(["add", *[str(p) for p in paths]], cwd=cwd)


def push(paths: list[Path], cwd: Path) -> None:
    run(["push", "-q", *[str(p.with_name(p.name + ".dvc")) for p in paths]], cwd=cwd)


def has_remote(cwd: Path) -> bool:
    try:
        return bool(run(["remote", "default"], cwd=cwd).strip())
    except MlciError:
        return False


def cache_object(root: Path, md5: str) -> Path:
    return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
