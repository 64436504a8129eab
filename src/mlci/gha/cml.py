"""Post the report with CML (`cml comment update`), installed by `iterative/setup-cml`.

`cml comment update` edits the last comment carrying the watermark title, or creates one, so
the pull request keeps a single report. Local images are uploaded to a public host only when
`publish` is set; otherwise `--no-publish` keeps them off the internet.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

# what cml prints when GitHub refuses the token's write (a fork's read-only GITHUB_TOKEN)
_READ_ONLY = re.compile(r"Resource not accessible by integration|\b403\b|HttpError: Forbidden",
                        re.IGNORECASE)


class CmlError(Exception):
    pass


class CmlReadOnly(CmlError):
    """cml ran, but GitHub refused the token's write."""


def argv(body: Path, *, pr: int | None, sha: str | None, title: str, publish: bool) -> list[str]:
    if pr is not None:
        target = f"pr/{pr}"
    elif sha:
        target = f"commit/{sha}"
    else:
        raise ValueError("a pull request number or a commit sha is needed")
    return ["cml", "comment", "update", f"--target={target}", f"--watermark-title={title}",
            "--publish" if publish else "--no-publish", str(body)]


def post(body: Path, *, pr: int | None, sha: str | None, title: str, publish: bool,
         token: str) -> str:
    """Run cml; return the comment URL it prints (empty when it prints none)."""
    exe = shutil.which("cml")
    if exe is None:
        raise CmlError("cml is not on PATH (add iterative/setup-cml, or use poster: github)")
    cmd = argv(body, pr=pr, sha=sha, title=title, publish=publish)
    env = dict(os.environ)
    if token:
        env["REPO_TOKEN"] = token
    p = subprocess.run([exe, *cmd[1:]], env=env, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        output = p.stderr.strip() or p.stdout.strip() or "no output"
        last = output.splitlines()[-1]
        if _READ_ONLY.search(output):
            raise CmlReadOnly(f"cml exited with {p.returncode}: {last}")
        raise CmlError(f"cml exited with {p.returncode}: {last}")
    lines = [ln.strip() for ln in p.stdout.splitlines() if ln.strip().startswith("http")]
    return lines[-1] if lines else ""
