"""The data trigger users copy (examples/workflows/mlci-data.yml), run end to end by `act`.

The user repository is examples/iris after `mlci data init --remote <folder>` was committed: the
`.dvc` files are in git, the data is not (act copies only what git tracks, as a checkout would),
so the job pulls it from the DVC remote first. The example calls the reusable
`org/mlci-actions/.github/workflows/data.yml@v1`, which resolves to this checkout.

Stand-ins for what a real run reaches over the network, all on this machine:
  * github.com's git side: a bare repository; `GIT_CONFIG_GLOBAL` maps `https://github.com/` onto
    its folder with git's own `url.<base>.insteadOf`, so the workflow's push command is the one
    it runs on GitHub;
  * the REST API: tests/e2e/fake_github.py (pull requests; it refuses a pull request whose branch
    is not in the bare repository and records whether the token matched);
  * the shared MLflow server: a SQLite store outside the job's workspace (MLFLOW_TRACKING_URI
    in the runner's environment), so the registry can be inspected after the job;
  * the DVC remote: a local folder.
The temporary repository has no `origin`, so act is told its name (`GITHUB_REPOSITORY=u/r`), as
GitHub sets it on a runner.

Four runs on purpose (each is a real job: install, DVC, Great Expectations, MLflow):
  1. repository_dispatch, good data → retrained, registered, branch pushed, pull request opened
     with the report; the payload's reason is hostile text and stays text;
  2. workflow_dispatch, schema-breaking data → fails before training; nothing pushed or opened;
  3. workflow_dispatch, drifted data with `data_update.on_drift: block` → refused, drift named;
  4. repository_dispatch, drifted data with the default `warn` and `auto-promote: 'true'` →
     trained, drift flagged, promoted to staging, no pull request.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from e2e.conftest import IRIS, ActRun
from e2e.fake_github import FakeGitHub
from e2e.support import INJECTION

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "examples" / "workflows" / "mlci-data.yml").read_text(encoding="utf-8")
TOKEN = "ghs_e2e_secret_token"
BIN = Path(sys.executable).parent
GIT = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
PWNED = Path("/tmp/pwned")

# A second job in the caller keeps what the tests read: the called workflow's outputs and result.
# act does not start it when the called job failed (even with `always()`); the failure tests read
# the step outputs act logs instead.
AFTER = """
  after:
    needs: data
    if: ${{ always() }}
    runs-on: ubuntu-latest
    timeout-minutes: 5
    steps:
      - shell: bash
        env:
          OUTS: ${{ toJSON(needs.data) }}
        run: |
          set -euo pipefail
          printf '%s' "$OUTS" > "$MLCI_E2E_DIR/outputs.json"
"""


def workflow(auto_promote: bool = False) -> str:
    text = EXAMPLE
    if auto_promote:
        assert "auto-promote: 'false'" in text
        text = text.replace("auto-promote: 'false'", "auto-promote: 'true'")
    return text.rstrip("\n") + "\n" + AFTER


def batch(kind: str, path: Path) -> Path:
    df = pd.read_csv(IRIS / "data" / "train.csv")
    rng = np.random.default_rng(5)
    if kind == "good":  # the same distribution, new rows
        b = df.sample(40, random_state=1).copy()
        for c in df.columns[:4]:
            b[c] = (b[c] + rng.normal(0, 0.05, len(b))).round(2)
    elif kind == "schema":  # a column renamed and another one gone
        b = df.drop(columns=["sepal_width"]).rename(columns={"petal_width": "petal_w"}).head(30)
    elif kind == "drifted":  # valid values, but only one species and its flower sizes
        b = df[df.species == "virginica"].sample(60, replace=True, random_state=2).copy()
        b["petal_length"] = (b["petal_length"] + rng.normal(0, 0.05, len(b))).round(2)
        b["sepal_length"] = (b["sepal_length"] + rng.normal(0, 0.05, len(b))).round(2)
    else:
        raise ValueError(kind)
    b.to_csv(path, index=False)
    return path


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def host_path():
    """The runner finds `dvc` on PATH (a job's venv links this interpreter's packages)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    yield
    mp.undo()


@pytest.fixture(scope="module")
def dvc_init(tmp_path_factory: pytest.TempPathFactory, host_path) -> tuple[dict[str, str], Path]:
    """What the user commits after `mlci data init --remote <folder>`, and that remote."""
    base = tmp_path_factory.mktemp("data-init")
    repo, remote = base / "repo", base / "dvc-remote"
    import shutil

    shutil.copytree(IRIS, repo, ignore=shutil.ignore_patterns(".mlci"))
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", "init"], cwd=repo, check=True)
    p = subprocess.run([str(BIN / "mlci"), "data", "init", "--remote", str(remote)], cwd=repo,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    changed = subprocess.run(["git", "ls-files", "-m", "-o", "--exclude-standard"], cwd=repo,
                             capture_output=True, text=True, check=True).stdout.split()
    files = {rel: (repo / rel).read_text(encoding="utf-8") for rel in changed}
    assert {"data/train.csv.dvc", "data/golden.csv.dvc", ".dvc/config"} <= set(files), files
    assert "/train.csv" in files["data/.gitignore"]
    return files, remote


@dataclass
class DataRun:
    act: ActRun
    github: FakeGitHub
    bare: Path
    mlflow_db: Path
    remote_before: list[str]
    remote_after: list[str]

    def outputs(self) -> dict:
        return self.act.outputs()

    def logged_output(self, name: str) -> str | None:
        """The last value act logged for a step output of the data-update action."""
        found = None
        for line in self.act.log.splitlines():
            _, sep, rest = line.partition(f"::set-output:: {name}=")
            if sep:
                found = rest.strip()
        return found

    def branches(self) -> list[str]:
        out = subprocess.run(["git", "--git-dir", str(self.bare), "branch", "--format",
                              "%(refname:short)"], capture_output=True, text=True, check=True)
        return out.stdout.split()

    def show(self, what: str) -> str:
        return subprocess.run(["git", "--git-dir", str(self.bare), "show", what],
                              capture_output=True, text=True, check=True).stdout

    def registry(self) -> tuple[list[int], list[tuple[str, int]]]:
        if not self.mlflow_db.is_file():
            return [], []
        with sqlite3.connect(self.mlflow_db) as con:
            versions = con.execute("select version from model_versions where current_stage != "
                                   "'Deleted_Internal' order by version").fetchall()
            aliases = con.execute("select alias, version from registered_model_aliases "
                                  "order by alias").fetchall()
        return [v for (v,) in versions], aliases

    def run_tag(self, key: str) -> list[str]:
        with sqlite3.connect(self.mlflow_db) as con:
            return [v for (v,) in con.execute("select value from tags where key = ?", (key,))]


@pytest.fixture(scope="module")
def data_run(act_env, dvc_init, tmp_path_factory):
    files, remote = dvc_init

    def run(name: str, event: str, payload: dict, kind: str, *, auto_promote: bool = False,
            config_extra: str = "") -> DataRun:
        base = tmp_path_factory.mktemp(f"data-{name}")
        bare = base / "github.com" / "u" / "r.git"
        subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
        gitconfig = base / "gitconfig"
        gitconfig.write_text(f'[url "file://{base}/github.com/"]\n'
                             "\tinsteadOf = https://github.com/\n", encoding="utf-8")
        source = batch(kind, base / f"{kind}.csv")
        payload = json.loads(json.dumps(payload).replace("@SOURCE@", str(source)))
        user_files = dict(files)
        # the batch lies outside the project: allow its folder (data_update.fetch), as a
        # user allows the place their batches arrive from
        cfg = yaml.safe_load((IRIS / "mlci.yaml").read_text())
        du = cfg.setdefault("data_update", {})
        du.update(yaml.safe_load(config_extra).get("data_update", {}) if config_extra else {})
        du["fetch"] = {"local_roots": [".", str(source.parent)]}
        user_files["mlci.yaml"] = yaml.safe_dump(cfg, sort_keys=False)
        before = listing(remote)
        with FakeGitHub() as gh:
            gh.state.token = TOKEN
            gh.state.git_remote = str(bare)
            result = act_env(workflow(auto_promote), event, payload, name=f"data-{name}",
                             files=user_files, timeout=900, extra_env={
                                 "GITHUB_REPOSITORY": "u/r",
                                 "GIT_CONFIG_GLOBAL": str(gitconfig),
                                 "MLCI_API_URL": gh.url,
                                 "MLCI_COMMENT_MAX_WAIT": "0",
                                 "MLFLOW_TRACKING_URI": f"sqlite:///{base}/mlflow.db",
                             })
        return DataRun(result, gh, bare, base / "mlflow.db", before, listing(remote))

    return run


def dispatch(source: str, reason: str) -> dict:
    return {"action": "mlci-retrain", "client_payload": {"source": source, "reason": reason},
            "repository": {"full_name": "u/r", "default_branch": "main"}}


def manual(source: str, mode: str = "append") -> dict:
    return {"inputs": {"source": source, "mode": mode}, "ref": "refs/heads/main",
            "repository": {"full_name": "u/r", "default_branch": "main"}}


@pytest.fixture(autouse=True)
def no_pwned():
    PWNED.unlink(missing_ok=True)
    yield
    assert not PWNED.exists(), "hostile text was executed"


def test_good_data_opens_a_pull_request(data_run) -> None:
    run = data_run("good", "repository_dispatch", dispatch("@SOURCE@", INJECTION), "good")
    assert run.act.code == 0, run.act.log[-6000:]
    out = run.outputs()
    assert out["result"] == "success"
    assert out["outputs"]["status"] == "updated"
    assert out["outputs"]["model-version"] == "1"
    assert json.loads(out["outputs"]["drifted-columns"]) == []
    # registered in the tracking store
    versions, aliases = run.registry()
    assert versions == [1] and ("candidate", 1) in aliases
    assert run.run_tag("mlci.trigger.reason") == [INJECTION]  # lineage says why
    # the branch on the git remote holds exactly the updated .dvc file and the batch ledger
    assert run.branches() == ["mlci/data-update"]
    commit = run.show("mlci/data-update")
    assert "mlci: data update, model v1" in commit and INJECTION in commit
    assert "data/train.csv.dvc" in commit and "data/golden.csv.dvc" not in commit
    ledger = json.loads(run.show("mlci/data-update:data/train.csv.batches.json"))
    assert [b["rows"] for b in ledger.values()] == [40]  # a resend of this batch is refused
    dvc_file = run.show("mlci/data-update:data/train.csv.dvc")
    md5 = dvc_file.split("md5: ", 1)[1].split()[0]
    # ... whose data reached the DVC remote
    assert len(run.remote_after) == len(run.remote_before) + 1
    assert any(p.endswith(md5[2:]) for p in run.remote_after)
    # one pull request, the report as its body
    [pr] = run.github.state.pulls
    assert (pr["head"]["ref"], pr["base"]["ref"]) == ("mlci/data-update", "main")
    assert pr["title"] == "mlci: data update, model v1"
    assert pr["body"].startswith("## ✅ mlci: iris v1")
    assert "### Data update" in pr["body"] and "Rows: 120 → 160 (+40 / −0)." in pr["body"]
    assert out["outputs"]["pull-request-url"] == pr["html_url"]
    assert all(r["auth_ok"] for r in run.github.state.requests)
    assert TOKEN not in run.act.log
    header = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert header not in run.act.log  # the push's basic-auth header is masked


def test_schema_breaking_data_fails_before_training(data_run) -> None:
    run = data_run("schema", "workflow_dispatch", manual("@SOURCE@"), "schema")
    assert run.act.code != 0
    assert "Job 'validate, retrain and propose the new data' failed" in run.act.log
    assert run.logged_output("status") == "refused"
    assert run.logged_output("model-version") == ""
    assert "new data has a different schema" in run.act.log
    assert "missing column(s) 'sepal_width', 'petal_width'" in run.act.log
    assert "Summary - " in run.act.log  # the report went to the job summary
    assert run.registry() == ([], [])  # nothing trained or registered
    assert run.branches() == [] and run.github.state.pulls == []
    assert run.remote_after == run.remote_before


def test_drifted_data_is_refused_when_blocking(data_run) -> None:
    run = data_run("block", "workflow_dispatch", manual("@SOURCE@"), "drifted",
                   config_extra="data_update: {on_drift: block}\n")
    assert run.act.code != 0
    assert "Job 'validate, retrain and propose the new data' failed" in run.act.log
    assert run.logged_output("status") == "refused"
    drifted = json.loads(run.logged_output("drifted-columns") or "[]")
    assert {"species", "petal_length"} <= set(drifted)
    assert "(data_update.on_drift: block)" in run.act.log
    assert "drifted" in run.act.log.split("Summary - ", 1)[-1]
    assert run.registry() == ([], [])
    assert run.branches() == [] and run.github.state.pulls == []
    assert run.remote_after == run.remote_before


def test_drifted_data_warns_and_auto_promotes(data_run) -> None:
    run = data_run("warn", "repository_dispatch", dispatch("@SOURCE@", "drift check"), "drifted",
                   auto_promote=True)
    assert run.act.code == 0, run.act.log[-6000:]
    out = run.outputs()
    assert out["result"] == "success" and out["outputs"]["status"] == "updated"
    drifted = json.loads(out["outputs"]["drifted-columns"])
    assert {"species", "petal_length"} <= set(drifted)
    assert "| species | ⚠️ drifted |" in run.act.log  # the report in the job summary
    versions, aliases = run.registry()
    assert versions == [1] and ("staging", 1) in aliases
    assert out["outputs"]["pull-request-url"] == ""
    assert run.branches() == [] and run.github.state.pulls == []
    assert len(run.remote_after) == len(run.remote_before) + 1
