"""The embedded registry carried between workflow runs, and the promote job, run by `act`.

Two pushes to main, each a fresh checkout on a fresh "runner", both calling the reusable
`code.yml` with `registry-store-url` (a folder standing in for a bucket) and `promote-to:
champion`. The second run must see the first run's registry: it registers version 2,
compares with champion 1, and its promote job moves champion to 2; the audit trail holds both
promotions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.support import after_job

pytestmark = pytest.mark.e2e

MLCI = str(Path(sys.executable).with_name("mlci"))


def workflow(store: Path) -> str:
    return f"""name: ml
on:
  push:
    branches: [main]
permissions: {{}}
jobs:
  ml:
    uses: org/mlci-actions/.github/workflows/code.yml@v1
    permissions:
      contents: read
      pull-requests: write
    with:
      config: mlci.yaml
      poster: summary
      registry-store-url: {store}
      promote-to: champion
""" + after_job("ml")


PUSH = {"ref": "refs/heads/main", "after": "3" * 40,
        "repository": {"full_name": "u/r", "default_branch": "main"}}


def outputs(run) -> tuple[str, str, str]:
    out = run.outputs()["outputs"]
    return out["verdict"], out["model-version"], out["promoted-version"]


def history(store: Path, tmp: Path) -> list[dict]:
    tmp.mkdir(parents=True, exist_ok=True)
    env = {"PATH": "/usr/bin:/bin"}
    p = subprocess.run([MLCI, "store", "pull", "--url", str(store)], cwd=tmp, env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([MLCI, "history", "iris", "--json"], cwd=tmp, env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    return data["events"] if isinstance(data, dict) else data


def test_registry_survives_between_runs_and_the_promote_job_moves_champion(
        act_env, tmp_path: Path) -> None:
    store = tmp_path / "bucket" / "iris-store.tar.gz"
    first = act_env(workflow(store), "push", PUSH, name="store1")
    assert first.code == 0, first.log[-4000:]
    assert outputs(first) == ("pass", "1", "1")
    assert [(e["action"], e["to_version"]) for e in history(store, tmp_path / "a")] == [
        ("promote", "1")]

    second = act_env(workflow(store), "push", PUSH, name="store2")
    assert second.code == 0, second.log[-4000:]
    assert outputs(second) == ("pass", "2", "2")
    assert "registry champion iris/1" in second.log
    events = history(store, tmp_path / "b")
    assert [(e["action"], e["from_version"], e["to_version"]) for e in events] == [
        ("promote", None, "1"), ("promote", "1", "2")]
