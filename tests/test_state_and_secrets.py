"""Files the canary and the data trigger leave behind: the rollout state readable by the
gateway's group (it holds no secret), a route secret that is really a secret, and a commit
message without the credentials of a data source."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlci.serve.routing import deployment_secret
from mlci.serve.state import CanaryState, read_state, write_state

ROOT = Path(__file__).resolve().parents[1]


def test_the_rollout_state_gets_the_mode_of_a_plain_file(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        p = tmp_path / "canary" / "state.json"
        write_state(p, CanaryState(id="c", model="m", champion="1", challenger="2",
                                   steps=[10.0]))
        assert p.stat().st_mode & 0o777 == 0o644  # was 0600 (mkstemp's)
        os.chmod(p, 0o640)  # an operator's choice is kept across rewrites
        write_state(p, read_state(p))
        assert p.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(umask)


@pytest.mark.parametrize("content", ["", "\n", "abcd\n"])
def test_an_empty_or_short_route_secret_is_refused(tmp_path: Path, content: str) -> None:
    f = tmp_path / "route-secret"
    f.write_text(content)
    with pytest.raises(ValueError, match="at least 16"):
        deployment_secret(f)
    f.unlink()
    assert len(deployment_secret(f)) == 32 and f.stat().st_mode & 0o077 == 0


def _commit_step() -> str:
    wf = yaml.safe_load((ROOT / ".github/workflows/data.yml").read_text())
    steps = next(iter(wf["jobs"].values()))["steps"]
    return next(s for s in steps if s.get("id") == "branch")["run"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_data_commit_message_carries_the_source_without_credentials(tmp_path: Path
                                                                        ) -> None:
    """The workflow's own step, run as written (bash, git) against a bare repository standing
    in for GitHub: before, the raw source URL went into the commit message."""
    repo, remote = tmp_path / "work", tmp_path / "server" / "o" / "r.git"
    remote.parent.mkdir(parents=True)
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    (repo / "train.csv.dvc").write_text("outs: []\n")
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=repo, check=True)
    (repo / "train.csv.dvc").write_text("outs: [changed]\n")
    out = tmp_path / "github_output"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")},
           "MLCI_BRANCH": "mlci/data-update", "MLCI_BASE": "main", "MLCI_REASON": "r",
           "MLCI_SOURCE": "https://alice:s3cr3t-pass@data.example.com/new.csv?sig=abc#x",
           "MLCI_VERSION": "7", "MLCI_PYTHON": sys.executable, "MLCI_GITHUB_TOKEN": "t",
           "GITHUB_SERVER_URL": f"file://{tmp_path / 'server'}", "GITHUB_REPOSITORY": "o/r",
           "GITHUB_OUTPUT": str(out), "PYTHONPATH": str(ROOT / "src")}
    p = subprocess.run(["bash", "-c", _commit_step()], cwd=repo, env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    msg = subprocess.run(["git", "log", "-1", "--format=%B", "mlci/data-update"], cwd=remote,
                         capture_output=True, text=True, check=True).stdout
    assert "Source: https://data.example.com/new.csv" in msg
    assert "s3cr3t" not in msg and "alice" not in msg and "sig=abc" not in msg
