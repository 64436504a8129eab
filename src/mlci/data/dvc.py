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


def check_remote(root: Path, remote: str | None, remote_name: str,
                 set_default: bool) -> bool:
    """Before anything is written: may `remote` be added under `remote_name`, and does it
    become the default? Only when there is no default yet, or when asked (`set_default`);
    an existing remote of that name with another URL is never overwritten."""
    if not remote or repo_root(root) is None:
        return True
    try:
        url = run(["config", f"remote.{remote_name}.url"], cwd=root).strip()
    except MlciError:
        url = ""
    if url and url != remote:
        raise MlciError(f"DVC remote {remote_name!r} exists with another URL ({url}); "
                        "choose another --remote-name")
    current = remote_of(root)
    return set_default or current is None or current[0] == remote_name


def init(root: Path, remote: str | None, remote_name: str = "storage",
         default: bool = True) -> list[str]:
    """`dvc init` when absent, and the remote (the default one only when `default`)."""
    done = []
    if repo_root(root) is None:
        run(["init", "-q"] + ([] if git_root(root) else ["--no-scm"]), cwd=root)
        done.append("dvc init")
    if remote:
        run(["remote", "add", "-f", *(["-d"] if default else []), remote_name, remote],
            cwd=root)
        done.append(f"remote {remote_name} -> {remote}"
                    + (" (default)" if default else " (the default remote is kept; "
                       "--set-default switches it)"))
    return done


def is_tracked(path: Path) -> bool:
    return path.with_name(path.name + ".dvc").is_file()


def add(paths: list[Path], cwd: Path) -> None:
    """Track files with DVC; files Git tracked so far are handed over (`git rm --cached`)."""
    for p in paths:
        if git_root(cwd) and subprocess.run(
            ["git", "ls-files", "--error-unmatch", str(p)], cwd=cwd, capture_output=True
        ).returncode == 0:
            subprocess.run(["git", "rm", "-r", "-q", "--cached", str(p)], cwd=cwd, check=True,
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


# Environment variables each remote type reads its credentials from (what CI must forward)
CREDENTIALS = {
    "s3": "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE; AWS_SESSION_TOKEN for "
          "temporary keys)",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS (path of a service-account JSON key)",
    "gcs": "GOOGLE_APPLICATION_CREDENTIALS (path of a service-account JSON key)",
    "azure": "AZURE_STORAGE_CONNECTION_STRING (or AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY)",
    "ssh": "an SSH key for the host (ssh-agent or the remote's keyfile setting)",
    "http": "the remote's user/password (dvc remote modify --local)",
    "https": "the remote's user/password (dvc remote modify --local)",
}


def remote_of(cwd: Path) -> tuple[str, str] | None:
    """(name, url) of the default remote, or None when none is configured."""
    try:
        name = run(["remote", "default"], cwd=cwd).strip()
    except MlciError as exc:
        if "no default remote" in exc.message.lower():
            return None
        raise  # dvc itself failed: say why, never "no remote"
    # `dvc remote list` is a table wrapped at the terminal's width: a long URL breaks across
    # lines there, so the URL is read from the config key itself.
    url = run(["config", f"remote.{name}.url"], cwd=cwd).strip() if name else ""
    return (name, url) if url else None


def absent_tracked(paths: dict[str, Path]) -> dict[str, Path]:
    """The inputs a pull would fetch: DVC-tracked (a `.dvc` file, or the output of a stage
    recorded in a dvc.lock) and absent from the workspace."""
    return {label: p for label, p in paths.items()
            if not p.exists() and (is_tracked(p) or _locked_output(p))}


def _locked_output(path: Path) -> bool:
    from mlci.data.dvc_stages import producer

    st = producer(path, path.parent)
    return st is not None and (st.file.parent / "dvc.lock").is_file()


def _pull_target(p: Path) -> str:
    """A `.dvc` file, or the output's own path (DVC pulls a stage output by its path)."""
    return str(p.with_name(p.name + ".dvc")) if is_tracked(p) else str(p)


def pull_missing(paths: dict[str, Path], cwd: Path) -> list[str]:
    """`dvc pull` the DVC-tracked inputs that are absent from the workspace.

    Returns the labels pulled; raises one line naming the remote and the credential it needs
    when the pull fails. Untracked missing files are left for the caller to report."""
    wanted = absent_tracked(paths)
    if not wanted:
        return []
    root = repo_root(cwd) or cwd
    targets = [_pull_target(p) for p in wanted.values()]
    what = ", ".join(f"{label} ({p.name})" for label, p in wanted.items())
    remote = remote_of(root)
    if remote is None:
        raise MlciError(f"{what}: DVC-tracked but absent, and no DVC remote is configured "
                        "(dvc remote add -d storage <url>, then dvc push)")
    name, url = remote
    try:
        run(["pull", "-q", *targets], cwd=root)
    except MlciError as exc:
        scheme = url.split("://", 1)[0].lower() if "://" in url else "local"
        need = CREDENTIALS.get(scheme)
        hint = f"; it needs {need}" if need else ""
        detail = exc.message.split(" failed: ", 1)[-1]
        raise MlciError(f"{what}: DVC-tracked but absent, and pulling from remote {name!r} "
                        f"({url}) failed: {detail}{hint}") from None
    absent = [label for label, p in wanted.items() if not p.exists()]
    if absent:
        raise MlciError(f"{', '.join(absent)}: still absent after dvc pull from remote "
                        f"{name!r} ({url}); was it pushed (dvc push)?")
    return list(wanted)
