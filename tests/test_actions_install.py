"""scripts/install.sh and the glue (python -m mlci.gha): install once, no-op on the same build,
a tampered venv rebuilt, clear errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mlci

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e  # installs into fresh venvs


def sh(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLCI_", "GITHUB_"))}
    return subprocess.run(["bash", *args], env={**base, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("co") / "mlci-actions"
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".mlci", "__pycache__", "*.egg-info", "build", "examples", "tests",
        "bench", ".ruff_cache", ".pytest_cache"))
    return dest


@pytest.fixture(scope="module")
def installed(checkout: Path, tmp_path_factory: pytest.TempPathFactory):
    venv = tmp_path_factory.mktemp("venv") / "mlci-venv"
    env = {"MLCI_ACTION_VENV": str(venv), "MLCI_ACTION_SEED_VENV": sys.prefix,
           "MLCI_ACTION_PYTHON": sys.executable}
    p = sh(str(checkout / "scripts" / "install.sh"), env=env)
    assert p.returncode == 0, p.stderr
    return venv, env, p


def test_installs_from_the_checkout_into_the_venv(installed, checkout: Path) -> None:
    venv, env, p = installed
    assert p.stdout.strip() == f"{venv}/bin/python"
    assert f"installed mlci {mlci.__version__}-" in p.stderr
    where = subprocess.run([p.stdout.strip(), "-c", "import mlci; print(mlci.__file__)"],
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(venv))  # not the test interpreter's editable copy


@pytest.mark.exclusive  # timed
def test_second_run_is_a_no_op(installed, checkout: Path) -> None:
    venv, env, _ = installed
    t = time.perf_counter()
    p = sh(str(checkout / "scripts" / "install.sh"), env=env)
    assert p.returncode == 0 and "already installed" in p.stderr
    assert time.perf_counter() - t < 5
    assert p.stdout.strip() == f"{venv}/bin/python"


def test_a_planted_pth_makes_the_next_install_rebuild(installed, checkout: Path,
                                                      tmp_path: Path) -> None:
    """A pull request's code writes a .pth into the venv (it would run in every later step,
    including one holding a token): the next action's install.sh sees the manifest broken and
    rebuilds the venv from scratch, so the file is gone before any later step imports."""
    venv, env, _ = installed
    script = str(checkout / "scripts" / "install.sh")
    sealed = sh(script, "--manifest", env=env).stdout.strip()
    assert len(sealed) == 64
    py = f"{venv}/bin/python"
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # ordinary use does not break the seal
    assert subprocess.run([py, "-c", "from mlci.cli import main; main()", "--help"],
                          capture_output=True).returncode == 0
    assert sh(script, env=env).stderr.count("already installed") == 1
    planted = Path(site) / "zz_capture.pth"
    os.chmod(site, 0o755)  # the venv is read-only; code running as its owner can undo that
    planted.write_text("import os; open(os.environ['CAPTURED'], 'w').write('token')\n")
    p = sh(script, env=env)
    assert p.returncode == 0, p.stderr
    assert "changed since it was installed; rebuilding" in p.stderr and "installed mlci" in p.stderr
    assert not planted.exists()
    captured = tmp_path / "captured"
    subprocess.run([py, "-c", "pass"], env={**os.environ, "CAPTURED": str(captured)}, check=True)
    assert not captured.exists()
    resealed = sh(script, "--manifest", env=env).stdout.strip()
    assert resealed != sealed and resealed == (venv / ".mlci-manifest").read_text().strip()


def test_an_edited_module_also_breaks_the_seal(installed, checkout: Path) -> None:
    venv, env, _ = installed
    script = str(checkout / "scripts" / "install.sh")
    sealed = (venv / ".mlci-manifest").read_text().strip()
    init = next(venv.rglob("site-packages/mlci/__init__.py"))
    init.chmod(0o644)
    init.write_text(init.read_text() + "\n# planted\n")
    assert sh(script, "--manifest", env=env).stdout.strip() != sealed
    p = sh(script, env=env)
    assert p.returncode == 0 and "rebuilding" in p.stderr
    assert "# planted" not in next(venv.rglob("site-packages/mlci/__init__.py")).read_text()


def test_build_id_changes_with_the_sources(checkout: Path, tmp_path: Path) -> None:
    before = sh(str(checkout / "scripts" / "install.sh"), "--version").stdout.strip()
    assert before.startswith(f"{mlci.__version__}-")
    assert len(before) == len(mlci.__version__) + 1 + 12
    other = tmp_path / "co"
    shutil.copytree(checkout, other)
    with (other / "src" / "mlci" / "__init__.py").open("a") as fh:
        fh.write("# changed\n")
    after = sh(str(other / "scripts" / "install.sh"), "--version").stdout.strip()
    assert after != before


def test_no_python_is_a_clear_error(tmp_path: Path, checkout: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3").write_text("#!/bin/sh\nexit 1\n")
    (fake / "python3").chmod(0o755)
    for tool in ("dirname", "sed", "head", "find", "sort", "xargs", "cat", "sha256sum", "cut"):
        (fake / tool).symlink_to(shutil.which(tool))
    p = subprocess.run([shutil.which("bash"), str(checkout / "scripts" / "install.sh")],
                       env={"PATH": str(fake), "RUNNER_TEMP": str(tmp_path)},
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1].startswith("install.sh: error: no Python >= 3.10")


def test_unknown_argument(checkout: Path) -> None:
    p = sh(str(checkout / "scripts" / "install.sh"), "--nope")
    assert p.returncode == 2 and "unknown argument: --nope" in p.stderr


def test_action_glue_reports_a_missing_config(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "mlci.gha", "train"], cwd=tmp_path,
                       env={**os.environ, "MLCI_CONFIG": '"; touch /tmp/pwned #.yaml'},
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.startswith('mlci: error: config not found: "; touch /tmp/pwned #.yaml')
    assert not Path("/tmp/pwned").exists()


def test_action_glue_writes_outputs(iris: Path, tmp_path: Path) -> None:
    out = tmp_path / "github_output"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLCI_", "GITHUB_"))}
    p = subprocess.run([sys.executable, "-m", "mlci.gha", "report"],
                       cwd=iris, env={**env, "GITHUB_OUTPUT": str(out)},
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    assert text.startswith("report-path<<MLCI_EOF_")
    assert f"{iris}/.mlci/report.md" in text


def test_promote_and_rollback_glue(iris: Path, tmp_path: Path) -> None:
    from conftest import run_mlci

    assert run_mlci("run", cwd=iris).code == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLCI_", "GITHUB_"))}
    out = tmp_path / "github_output"
    glue = [sys.executable, "-m", "mlci.gha"]
    p = subprocess.run([*glue, "promote"], cwd=iris, capture_output=True, text=True,
                       env={**env, "GITHUB_OUTPUT": str(out), "MLCI_TO": "staging",
                            "MLCI_VERSION": "", "MLCI_FORCE": "false", "MLCI_REASON": ""})
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    assert "\nstaging\n" in text and "version<<" in text and "\n1\n" in text
    p = subprocess.run([*glue, "rollback"], cwd=iris, capture_output=True, text=True,
                       env={**env, "GITHUB_OUTPUT": str(out), "MLCI_MODEL": "",
                            "MLCI_VERSION": "", "MLCI_REASON": "bad canary"})
    assert p.returncode in (1, 2), p.stderr  # no earlier champion to go back to
    assert p.stderr.strip().count("\n") == 0 and p.stderr.startswith("mlci:")


def test_a_planted_pth_with_a_rewritten_manifest_is_still_rebuilt(installed, checkout: Path,
                                                                   tmp_path: Path) -> None:
    """The attack that beat the seal kept inside the venv: plant a .pth, then write the
    venv's new manifest over the recorded one. The seal this job checks is kept outside the
    venv, so the next install still rebuilds; and the venv is left read-only."""
    import stat

    venv, env, _ = installed
    script = str(checkout / "scripts" / "install.sh")
    assert sh(script, env=env).returncode == 0
    py = f"{venv}/bin/python"
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    assert not any(m & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) for m in
                   (site.stat().st_mode, (site / "mlci" / "__init__.py").stat().st_mode,
                    venv.stat().st_mode))
    os.chmod(site, 0o755)
    os.chmod(venv, 0o755)
    planted = site / "zz_capture.pth"
    planted.write_text("import os; open(os.environ['CAPTURED'], 'w').write('ghs_FAKE')\n")
    forged = sh(script, "--manifest", env=env).stdout.strip()
    (venv / ".mlci-manifest").unlink()
    (venv / ".mlci-manifest").write_text(forged + "\n")
    p = sh(script, env=env)
    assert p.returncode == 0 and "rebuilding" in p.stderr, p.stderr
    assert not planted.exists()
    captured = tmp_path / "captured"
    subprocess.run([py, "-c", "pass"], env={**os.environ, "CAPTURED": str(captured)}, check=True)
    assert not captured.exists()
    # a pinned manifest (the setup action's output) wins over any file
    p = sh(script, env={**env, "MLCI_ACTION_MANIFEST": "0" * 64})
    assert p.returncode == 0 and "rebuilding" in p.stderr
