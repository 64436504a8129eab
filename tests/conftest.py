"""Shared fixtures: a throw-away copy of the Iris example with its own `.mlci/` store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# Pinned before numpy/scikit-learn load, also when pytest is started without scripts/test.sh.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

REPO = Path(__file__).resolve().parents[1]
IRIS = REPO / "examples" / "iris"


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_mlci(*args: str, cwd: Path, env: dict[str, str] | None = None,
             timeout: int = 300) -> Result:
    """Run the installed `mlci` in a subprocess, exactly as a user or an action does."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("GITHUB_", "MLCI_", "MLFLOW_"))}
    full_env.update(env or {})
    exe = Path(sys.executable).with_name("mlci")
    p = subprocess.run([str(exe), *args], cwd=cwd, env=full_env, capture_output=True,
                       text=True, timeout=timeout)
    return Result(p.returncode, p.stdout, p.stderr)


def make_project(dest: Path, git: bool = True) -> Path:
    shutil.copytree(IRIS, dest, ignore=shutil.ignore_patterns(".mlci"))
    if git:
        for cmd in (["git", "init", "-q", "-b", "main"],
                    ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A"],
                    ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "commit",
                     "-qm", "init"]):
            subprocess.run(cmd, cwd=dest, check=True)
    return dest


@pytest.fixture
def iris(tmp_path: Path) -> Path:
    """A git repo holding a copy of examples/iris (config, data, suite)."""
    return make_project(tmp_path / "iris")


@pytest.fixture(scope="session")
def trained_iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Iris after one full `mlci run` (shared, read-only for tests that only inspect)."""
    root = make_project(tmp_path_factory.mktemp("trained") / "iris")
    r = run_mlci("run", cwd=root)
    assert r.code == 0, r.err
    return root
