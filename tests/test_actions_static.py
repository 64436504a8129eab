"""Static checks of every action.yml and workflow: the style and security rules, then the linters
(actionlint with shellcheck, zizmor at its pedantic persona, check-jsonschema). The test doubles
under tests/e2e/doubles are never linted (they stand for third-party actions). A linter test
skips only when the tool is not installed; scripts/requirements-test.txt and CI install all of
them."""

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


def test_actionlint_with_shellcheck() -> None:
    exe, shellcheck = tool("actionlint"), tool("shellcheck")
    p = subprocess.run([exe, "-no-color", "-shellcheck", shellcheck, *map(str, WORKFLOWS)],
                       cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0 and not p.stdout.strip(), p.stdout + p.stderr


def zizmor(paths: list[Path], *config: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("zizmor"), "--offline", "--no-progress", "--persona", "pedantic",
                           *config, *map(str, paths)], cwd=ROOT, capture_output=True, text=True)


def test_zizmor_pedantic() -> None:
    p = zizmor(ACTIONS + WORKFLOWS, "--config", str(ZIZMOR_CONFIG))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "No findings to report" in p.stdout + p.stderr


def test_the_zizmor_config_only_relaxes_pinning_of_our_own_actions() -> None:
    """The one documented exception: this repository's actions at the release tag on the
    default branch (a release pins them by SHA, see scripts/pin_refs.py)."""
    cfg = load(ZIZMOR_CONFIG)
    assert cfg == {"rules": {"unpinned-uses": {"config": {"policies": {
        f"{OWN}/*": "ref-pin", "*": "hash-pin"}}}}}


def test_released_workflows_pass_zizmor_with_no_config(tmp_path: Path) -> None:
    """After the release rewrite every reference is a SHA: no exception is needed at all."""
    root = tmp_path / "release"
    for p in WORKFLOWS:
        (root / p.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
        (root / p.relative_to(ROOT)).write_text(p.read_text(encoding="utf-8"), encoding="utf-8")
    pin = [sys.executable, str(ROOT / "scripts" / "pin_refs.py"), "--root", str(root)]
    assert subprocess.run([*pin, "--check"], capture_output=True).returncode == 1
    p = subprocess.run([*pin, "--repo", "acme/mlci-actions", "--sha", "a" * 40, "--version",
                        "v1.2.3"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert subprocess.run([*pin, "--check"], capture_output=True).returncode == 0
    code = (root / ".github" / "workflows" / "code.yml").read_text(encoding="utf-8")
    assert f"uses: acme/mlci-actions/setup@{'a' * 40} # v1.2.3" in code and OWN not in code
    released = sorted(root.rglob("*.yml"))
    p = zizmor(released, "--no-config")
    assert p.returncode == 0 and "No findings to report" in p.stdout + p.stderr, p.stdout


def test_pin_refs_refuses_bad_arguments() -> None:
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "pin_refs.py"), "--repo", "x",
                        "--sha", "main", "--version", "1"], capture_output=True, text=True)
    assert p.returncode == 2 and "--repo, --sha, --version" in p.stderr


def jobs(name: str) -> dict:
    return load(ROOT / ".github" / "workflows" / name)["jobs"]


def test_code_workflow_token_lives_in_a_job_that_runs_no_user_code() -> None:
    j = jobs("code.yml")
    writers = [n for n, job in j.items()
               if "write" in (job.get("permissions") or {}).values()]
    assert writers == ["comment"]
    assert j["pipeline"]["permissions"] == {"contents": "read"}
    steps = j["comment"]["steps"]
    assert not any(s.get("uses", "").startswith("actions/checkout@") for s in steps)
    assert not any("run" in s for s in steps)  # no shell of its own, only the report action
    assert steps[0]["uses"].startswith("actions/download-artifact@")
    report = next(s for s in steps if s.get("uses", "").startswith(f"{OWN}/report@"))
    assert report["with"]["body"] == "report.md"  # posts the artifact, writes nothing new


def test_pull_requests_never_get_registry_credentials() -> None:
    """In the job that runs the pull request's code, every secret sits behind the
    push-to-default-branch condition (the step's `if:` or the expression itself)."""
    pipeline = jobs("code.yml")["pipeline"]
    assert pipeline["env"]["DEFAULT_BRANCH_PUSH"].startswith("${{ github.event_name == 'push'")
    harmless = {"secrets.AWS_ENDPOINT_URL"}  # an address, not a credential
    for step in pipeline["steps"]:
        guarded = "DEFAULT_BRANCH_PUSH == 'true'" in str(step.get("if", ""))
        for value in [*step.get("env", {}).values(), *step.get("with", {}).values()]:
            for ref in re.findall(r"secrets\.\w+", str(value)):
                assert ref in harmless or guarded or \
                    "env.DEFAULT_BRANCH_PUSH == 'true' && secrets." in str(value), (step, ref)


def test_the_venv_cache_is_never_saved_by_a_pull_request() -> None:
    steps = action_steps(ROOT / "setup" / "action.yml")
    save = [s for s in steps if s.get("uses", "").startswith("actions/cache/save@")]
    assert len(save) == 1 and "github.event_name != 'pull_request'" in save[0]["if"]
    assert not any(s.get("uses", "").startswith("actions/cache@") for s in steps)
    names = [s.get("id") or s.get("name") for s in steps]
    assert names.index("install") < names.index(save[0]["name"])  # saved before user code


@pytest.mark.parametrize(("schema", "paths"), [("vendor.github-actions", ACTIONS),
                                               ("vendor.github-workflows", WORKFLOWS)])
def test_json_schemas(schema: str, paths: list[Path]) -> None:
    exe = tool("check-jsonschema")
    p = subprocess.run([exe, "--builtin-schema", schema, *map(str, paths)], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_install_script_parses() -> None:
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / "install.sh")], check=True)


def test_two_models_do_not_share_a_concurrency_group() -> None:
    group = load(ROOT / ".github" / "workflows" / "code.yml")["concurrency"]["group"]
    assert "inputs.config" in group and "inputs.working-directory" in group
