"""The code stays ruff-clean (the same check the repository's CI workflow runs)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_is_clean() -> None:
    ruff = Path(sys.executable).with_name("ruff")
    exe = str(ruff) if ruff.exists() else shutil.which("ruff")
    if exe is None:
        pytest.skip("ruff is not installed (pip install -r scripts/requirements-test.txt)")
    p = subprocess.run([exe, "check", "--no-cache", "."], cwd=REPO, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stdout + p.stderr
