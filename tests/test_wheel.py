"""`mlci` as users get it: a wheel built by `python -m build` (what the release workflow
publishes), installed into a fresh virtual environment, run from there.

The fresh venv gets the wheel with `pip install --no-deps`; its dependencies (MLflow, Great
Expectations, scikit-learn: about 1 GB) are lent from the project's venv by a `.pth` line
placed after the venv's own site-packages, so the `mlci` that runs is the wheel's, never the
editable checkout (checked), and `pip check` proves the wheel's declared requirements are met.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
import tomllib
from conftest import REPO, make_project

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    p = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out),
                        str(REPO)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    (whl,) = out.glob("mlci-*.whl")
    print(f"\nwheel {whl.name}: {whl.stat().st_size / 1024:.0f} KiB", file=sys.stderr)
    return whl


@pytest.fixture(scope="module")
def user_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    env_dir = tmp_path_factory.mktemp("user") / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # after the venv's own packages: dependencies only, this checkout's editable hook unused
    Path(site, "zz-lent-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    p = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return env_dir


def test_the_wheel_holds_the_package_data(wheel: Path) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert wheel.name == f"mlci-{version}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("mlci/py.typed", "mlci/serve/schemas/inferenceservice-v1beta1.json",
                   "mlci/cli.py", "mlci/progress.py"):
        assert needed in names, needed
    assert not [n for n in names if n.startswith(("tests/", "examples/"))]
    meta = zipfile.ZipFile(wheel).read(f"mlci-{version}.dist-info/METADATA").decode()
    assert "Requires-Dist: mlflow" in meta and "Provides-Extra: serve" in meta
    entry = zipfile.ZipFile(wheel).read(f"mlci-{version}.dist-info/entry_points.txt").decode()
    assert "mlci = mlci.cli:main" in entry


def test_installed_mlci_runs_from_the_wheel(user_venv: Path, tmp_path: Path) -> None:
    exe, py = user_venv / "bin" / "mlci", user_venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "MLCI_", "MLFLOW_", "PYTHON"))}
    where = subprocess.run([str(py), "-c", "import mlci; print(mlci.__file__)"], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(user_venv), where  # the wheel's copy, not src/
    check = subprocess.run([str(py), "-m", "pip", "check"], env=env, capture_output=True,
                           text=True)
    assert "mlci" not in check.stdout, check.stdout  # every requirement of the wheel is met
    r = subprocess.run([str(exe), "--help"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "validate" in r.stdout and "canary" in r.stdout, r.stderr
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    r = subprocess.run([str(exe), "--version"], env=env, capture_output=True, text=True)
    assert version in r.stdout
    root = make_project(tmp_path / "iris")
    r = subprocess.run([str(exe), "validate", "--json"], cwd=root, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (root / ".mlci" / "validation.json").is_file()
