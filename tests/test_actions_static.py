"""Static checks of every action.yml and workflow: the style and security rules, then the linters
(actionlint, zizmor at its default persona, check-jsonschema). A linter test skips only when the
tool is not installed; CI installs all of them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ACTIONS = sorted([ROOT / "action.yml", *ROOT.glob("*/action.yml")])
OWN_WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
EXAMPLES = sorted((ROOT / "examples" / "workflows").glob("*.yml"))
WORKFLOWS = OWN_WORKFLOWS + EXAMPLES
ZIZMOR_CONFIG = ROOT / ".github" / "zizmor.yml"
OWN = "org/mlci-actions"
KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def load(p: Path) -> dict:
    return yaml.safe_load(p.read_text(encoding="utf-8"))


def action_steps(p: Path) -> list[dict]:
    return load(p)["runs"].get("steps", [])


def workflow_steps(p: Path) -> list[dict]:
    return [s for job in load(p)["jobs"].values() for s in job.get("steps", [])]


def tool(name: str) -> str:
    here = Path(sys.executable).with_name(name)
    exe = str(here) if here.exists() else shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed")
    return exe


def test_the_expected_actions_exist() -> None:
    names = {p.parent.name for p in ACTIONS if p.parent != ROOT}
    assert names == {"setup", "validate", "train", "evaluate", "report", "promote", "rollback",
                     "data-update", "canary", "monitor"}
    assert all((p.parent / "README.md").is_file() for p in ACTIONS if p.parent != ROOT)


@pytest.mark.parametrize("path", ACTIONS + WORKFLOWS, ids=rel)
def test_no_expression_inside_run(path: Path) -> None:
    steps = action_steps(path) if path in ACTIONS else workflow_steps(path)
    for step in steps:
        assert "${{" not in step.get("run", ""), f"{rel(path)}: expression in run: {step}"


@pytest.mark.parametrize("path", ACTIONS + OWN_WORKFLOWS, ids=rel)
def test_shell_steps_are_strict_bash(path: Path) -> None:
    steps = action_steps(path) if path in ACTIONS else workflow_steps(path)
    for step in (s for s in steps if "run" in s):
        if path in ACTIONS:
            assert step.get("shell") == "bash", step
        assert step["run"].lstrip().startswith("set -euo pipefail"), step


@pytest.mark.parametrize("path", ACTIONS, ids=rel)
def test_action_contract(path: Path) -> None:
    meta = load(path)
    assert meta["runs"]["using"] == "composite" and meta.get("description")
    for kind in ("inputs", "outputs"):
        for name, spec in (meta.get(kind) or {}).items():
            assert KEBAB.match(name), f"{kind} {name} is not kebab-case"
            assert spec.get("description"), f"{kind} {name} has no description"
            if kind == "inputs" and "default" in spec:
                assert isinstance(spec["default"], str), f"default of {name} is not a string"
    if path.parent != ROOT and path.parent.name != "setup":
        assert {"config", "working-directory"} <= set(meta["inputs"])
    for step in action_steps(path):
        for key in step.get("env", {}):
            assert key.startswith("MLCI_"), f"{rel(path)}: env {key} lacks the MLCI_ prefix"
        if "install.sh" in step.get("run", ""):
            assert '"$GITHUB_ACTION_PATH/' in step["run"]
        assert OWN not in step.get("uses", ""), "actions never nest this repository's actions"


@pytest.mark.parametrize("path", ACTIONS + WORKFLOWS, ids=rel)
def test_third_party_actions_pinned_by_sha_with_version_comment(path: Path) -> None:
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", line)
        if not m or m.group(1).startswith(("./", OWN)):
            continue
        assert PINNED.match(m.group(1)), f"{rel(path)}: not pinned by SHA: {line.strip()}"
        assert re.search(r"#\s*v\d+\.\d+\.\d+\s*$", m.group(2)), f"no # vX.Y.Z: {line.strip()}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=rel)
def test_workflow_hygiene(path: Path) -> None:
    wf = load(path)
    on = wf.get(True, wf.get("on"))  # YAML 1.1 reads the key `on` as True
    triggers = on if isinstance(on, (dict, list)) else [on]
    assert "pull_request_target" not in triggers
    assert "permissions" in wf, "top-level permissions"
    if path in OWN_WORKFLOWS or any("runs-on" in j for j in wf["jobs"].values()):
        assert "concurrency" in wf or all("concurrency" in j for j in wf["jobs"].values())
    for name, job in wf["jobs"].items():
        if "runs-on" in job:
            assert "timeout-minutes" in job, f"{name}: timeout-minutes"
        for step in job.get("steps", []):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False


def test_no_token_is_echoed() -> None:
    for path in ACTIONS + WORKFLOWS:
        for step in action_steps(path) if path in ACTIONS else workflow_steps(path):
            run = step.get("run", "")
            assert not re.search(r"(echo|printf)[^\n]*TOKEN", run), f"{rel(path)}: {run}"


def test_actionlint() -> None:
    exe = tool("actionlint")
    p = subprocess.run([exe, "-no-color", *map(str, WORKFLOWS)], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 0 and not p.stdout.strip(), p.stdout + p.stderr


def test_zizmor_default_persona() -> None:
    exe = tool("zizmor")
    p = subprocess.run([exe, "--offline", "--no-progress", "--config", str(ZIZMOR_CONFIG),
                        *map(str, ACTIONS + WORKFLOWS)], cwd=ROOT, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "No findings to report" in p.stdout + p.stderr


@pytest.mark.parametrize(("schema", "paths"), [("vendor.github-actions", ACTIONS),
                                               ("vendor.github-workflows", WORKFLOWS)])
def test_json_schemas(schema: str, paths: list[Path]) -> None:
    exe = tool("check-jsonschema")
    p = subprocess.run([exe, "--builtin-schema", schema, *map(str, paths)], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_install_script_parses() -> None:
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / "install.sh")], check=True)
