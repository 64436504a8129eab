"""The release workflow's promises (trusted publishing with attestations and the narrowest
permissions, the version check it runs, the two-commit release it makes: a dry run of its own
steps against a local bare repository standing in for github.com's git side and FakeGitHub for
its REST API), the Marketplace rules for every action, and MLflow's standard tags and run name
derived from mlci's own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import tomllib
import yaml
from conftest import REPO

RELEASE = REPO / ".github" / "workflows" / "release.yml"
# the icon is checked against GitHub's list by check-jsonschema in test_actions_static
COLORS = {"white", "black", "yellow", "blue", "green", "orange", "red", "purple", "gray-dark"}


def _workflow() -> dict:
    return yaml.safe_load(RELEASE.read_text())


def test_only_the_publish_job_can_mint_an_id_token() -> None:
    wf = _workflow()
    assert wf["permissions"] == {}
    perms = {name: job.get("permissions") for name, job in wf["jobs"].items()}
    assert perms == {"build": {"contents": "read"}, "publish": {"id-token": "write"},
                     "tag": {"contents": "write"}}
    publish = wf["jobs"]["publish"]
    assert publish["environment"]["name"] == "pypi" and publish["needs"] == "build"
    (pypi,) = [s for s in publish["steps"] if "gh-action-pypi-publish" in s["uses"]]
    # v1.14.2: PEP 740 attestations (on by default since v1.11; stated here so it stays on)
    assert pypi["uses"] == "pypa/gh-action-pypi-publish@dc37677b2e1c63e2034f94d8a5b11f265b73ba33"
    assert pypi["with"]["attestations"] is True
    assert not any("with" in s and "password" in s["with"] for s in publish["steps"])
    assert wf["jobs"]["tag"]["needs"] == "publish"
    for job in wf["jobs"].values():
        assert job["timeout-minutes"] <= 15
        for s in job["steps"]:
            assert "uses" not in s or re.search(r"@[0-9a-f]{40}$", s["uses"]), s["uses"]
            assert "${{" not in s.get("run", "")


def _version_check() -> str:
    (step,) = [s for s in _workflow()["jobs"]["build"]["steps"]
               if s.get("name") == "Check the version and the branch"]
    return re.search(r"<<'EOF'\n(.*?)\n\s*EOF", step["run"], re.S).group(1)


@pytest.mark.parametrize("version,ref,ok", [
    (None, "refs/heads/main", True),
    ("9.9.9", "refs/heads/main", False),
    (None, "refs/heads/feature", False),
    ("v1", "refs/heads/main", False),
])
def test_the_workflows_version_check(version, ref, ok) -> None:
    import tomllib

    have = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    script = "\n".join(line[10:] if line.startswith(" " * 10) else line
                       for line in _version_check().splitlines())
    p = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                       text=True, env={**os.environ, "MLCI_VERSION": version or have,
                                       "MLCI_REF": ref})
    assert (p.returncode == 0) is ok, p.stderr


def _step(job: str, name: str) -> str:
    (step,) = [s for s in _workflow()["jobs"][job]["steps"] if s.get("name") == name]
    assert "${{" not in step["run"]
    return step["run"]


CHANGELOG = """# Changelog

## [Unreleased]

## [1.0.0] - 2026-12-06

### Added
- The first release.

## [0.9.0] - 2026-11-01
- Older.
"""


def _bash(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "MLCI_"))}
    base["PATH"] = f"{Path(sys.executable).parent}:{base['PATH']}"  # python3 as on a runner
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True,
                          env={**base, **env}, timeout=120)


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def release_checkout(tmp_path: Path) -> tuple[Path, Path, str]:
    """Commit A: this repository's workflows and release scripts, a CHANGELOG with a 1.0.0
    section; a bare repository at <server>/acme/mlci-actions.git holds main."""
    a = tmp_path / "a"
    for rel in (".github/workflows", "examples/workflows"):
        for f in (REPO / rel).glob("*.yml"):
            (a / rel).mkdir(parents=True, exist_ok=True)
            (a / rel / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    (a / "scripts").mkdir()
    for name in ("pin_refs.py", "release.py"):
        (a / "scripts" / name).write_text((REPO / "scripts" / name).read_text())
    (a / "CHANGELOG.md").write_text(CHANGELOG)
    (a / "docs").mkdir()
    for rel in ("pyproject.toml", "docs/pypi.md"):
        (a / rel).write_text((REPO / rel).read_text(encoding="utf-8"), encoding="utf-8")
    _git("init", "-q", "-b", "main", cwd=a)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m",
         "A", cwd=a)
    _git("add", "-A", cwd=a)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "A", cwd=a)
    server = tmp_path / "server"
    bare = server / "acme" / "mlci-actions.git"
    _git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    _git("push", "-q", str(bare), "main", cwd=a)
    return a, server, _git("rev-parse", "HEAD", cwd=a)


def test_release_dry_run_pins_tags_checks_and_releases(release_checkout, tmp_path) -> None:
    from e2e.fake_github import FakeGitHub

    a, server, sha_a = release_checkout
    bare = server / "acme" / "mlci-actions.git"
    env = {"MLCI_GITHUB_TOKEN": "ghs_release", "MLCI_VERSION": "1.0.0", "MLCI_SHA": sha_a,
           "MLCI_REPO": "acme/mlci-actions", "GITHUB_SERVER_URL": str(server),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
    p = _bash(_step("tag", "Commit the pinned references, tag it, check the tag"), a, **env)
    assert p.returncode == 0, p.stderr
    assert "checked the tag" in p.stdout
    # the tag is commit B on top of A, and v1 moved to it
    b = _git("rev-parse", "v1.0.0^{commit}", cwd=bare)
    assert _git("rev-parse", "v1^{commit}", cwd=bare) == b != sha_a
    assert _git("rev-parse", f"{b}^", cwd=bare) == sha_a
    # every `uses:` in the tagged workflows is a SHA (own actions at A) or a local path
    tagged = tmp_path / "tagged"
    _git("clone", "-q", "--branch", "v1.0.0", str(bare), str(tagged), cwd=tmp_path)
    files = [*(tagged / ".github" / "workflows").glob("*.yml"),
             *(tagged / "examples" / "workflows").glob("*.yml")]
    uses = [m for f in files for m in re.findall(r"uses:\s*(\S+)", f.read_text())]
    assert uses and all(re.search(r"@[0-9a-f]{40}$", u) or u.startswith("./") for u in uses)
    own = [u for u in uses if "mlci-actions" in u]
    assert own and all(re.fullmatch(rf"acme/mlci-actions(/[\w./-]+)?@{sha_a}", u) for u in own)
    assert f"@{sha_a} # v1.0.0" in (tagged / ".github/workflows/code.yml").read_text()
    check = subprocess.run([sys.executable, "scripts/pin_refs.py", "--check"], cwd=tagged,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    # what PyPI shows names the repository at the release tag, not the placeholder
    page = (tagged / "docs" / "pypi.md").read_text()
    meta = tomllib.loads((tagged / "pyproject.toml").read_text())["project"]
    assert "org/mlci-actions" not in page + str(meta)
    assert "https://github.com/acme/mlci-actions/blob/v1.0.0/docs/adopting.md" in page
    assert "githubusercontent.com/acme/mlci-actions/v1.0.0/scripts/constraints.txt" in page
    assert meta["urls"]["Changelog"] == (
        "https://github.com/acme/mlci-actions/blob/v1.0.0/CHANGELOG.md")

    with FakeGitHub() as gh:
        gh.state.token = "ghs_release"
        p = _bash(_step("tag", "GitHub Release with the CHANGELOG notes"), a,
                  **env, GITHUB_API_URL=gh.url)
        assert p.returncode == 0, p.stderr
        (rel,) = gh.state.releases
        assert (rel["tag_name"], rel["name"], rel["make_latest"]) == ("v1.0.0", "v1.0.0", "true")
        assert rel["body"] == "### Added\n- The first release.\n"
        again = _bash(_step("tag", "GitHub Release with the CHANGELOG notes"), a,
                      **env, GITHUB_API_URL=gh.url)
        assert again.returncode == 1 and "already_exists" not in again.stderr
        assert "GitHub refused the release (422)" in again.stderr

    # a second run never moves a release tag
    _git("checkout", "-q", sha_a, cwd=a)
    p = _bash(_step("tag", "Commit the pinned references, tag it, check the tag"), a, **env)
    assert p.returncode == 2 and "v1.0.0 already exists on the remote" in p.stderr
    assert _git("rev-parse", "v1.0.0^{commit}", cwd=bare) == b


def test_the_build_jobs_dry_run_pushes_nothing(release_checkout, tmp_path) -> None:
    a, server, sha_a = release_checkout
    p = _bash(_step("build", "Pin the workflows (dry run, nothing pushed)"), a,
              MLCI_VERSION="1.0.0", MLCI_SHA=sha_a, MLCI_REPO="acme/mlci-actions")
    assert p.returncode == 0 and p.stdout.startswith("dry run:"), p.stderr
    assert _git("tag", cwd=server / "acme" / "mlci-actions.git") == ""


@pytest.mark.parametrize("args,code,message", [
    (["notes", "9.9.9"], 2, "no '## [9.9.9]' section"),
    (["pin", "--repo", "acme/x", "--sha", "a" * 40, "--version", "1.0.0"], 2,
     "the checkout is not at"),
    (["pin", "--repo", "x", "--sha", "a" * 40, "--version", "1.0.0"], 2, "not owner/name"),
    (["github-release", "--repo", "acme/x", "--version", "1.0.0"], 2, "MLCI_GITHUB_TOKEN"),
])
def test_release_script_errors_are_one_line(args, code, message, release_checkout) -> None:
    a, _, _ = release_checkout  # its HEAD is not the --sha given
    env = {k: v for k, v in os.environ.items() if k != "MLCI_GITHUB_TOKEN"}
    p = subprocess.run([sys.executable, str(a / "scripts" / "release.py"), *args,
                        "--root", str(a)], capture_output=True, text=True, env=env)
    last = p.stderr.strip().splitlines()[-1]  # argparse prints its usage above the error
    assert p.returncode == code and message in last and "Traceback" not in p.stderr, p.stderr


def test_notes_of_the_version_only() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    from release import notes

    assert notes(CHANGELOG, "0.9.0") == "- Older.\n"


ACTION_FILES = (sorted(str(p.relative_to(REPO)) for p in REPO.glob("*action.yml"))
                + sorted(str(p.relative_to(REPO)) for p in REPO.glob("*/action.yml")))


@pytest.mark.parametrize("path", ACTION_FILES)
def test_every_action_meets_the_marketplace_rules(path: str) -> None:
    """What the Marketplace form checks in an action's metadata: a name, a one-line description
    under 125 characters, an author, and branding with an icon and a color from its lists (the
    icon list is GitHub's schema, checked by check-jsonschema in test_actions_static). Every
    action is held to it, not only the listed root one, so any of them can be split out."""
    meta = yaml.safe_load((REPO / path).read_text())
    assert meta.get("name", "").strip() and meta.get("author", "").strip()
    desc = meta.get("description", "")
    assert 0 < len(desc) < 125 and "\n" not in desc.strip(), (len(desc), desc)
    b = meta.get("branding")
    assert b and b.get("color") in COLORS and re.fullmatch(r"[a-z0-9-]+", b.get("icon", ""))


def test_action_names_are_distinct_and_the_listed_one_is_at_the_root() -> None:
    """A listing shows one action per repository, the one whose action.yml is at the root; the
    others are used by path. Two actions with one name would be indistinguishable in logs."""
    names = [yaml.safe_load((REPO / p).read_text())["name"] for p in ACTION_FILES]
    assert len(set(names)) == len(names) and ACTION_FILES[0] == "action.yml"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "one action per repository" in readme


def _cfg(tmp_path: Path) -> SimpleNamespace:
    (tmp_path / ".git").mkdir(parents=True)
    (tmp_path / "models" / "churn").mkdir(parents=True)
    return SimpleNamespace(name="churn", path=tmp_path / "models" / "churn" / "mlci.yaml")


def test_mlflow_tags_follow_mlcis(tmp_path, monkeypatch) -> None:
    from mlci.train import TAG, mlflow_tags

    monkeypatch.delenv("CI", raising=False)
    tags = {TAG + "git.commit": "0123456789abcdef", TAG + "git.branch": "main",
            TAG + "git.dirty": "true", TAG + "git.repo": "acme/models",
            TAG + "trigger": "pull_request"}
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/models")
    t = mlflow_tags(_cfg(tmp_path), tags)
    assert t == {"mlflow.runName": "churn-0123456-dirty-pull_request",
                 "mlflow.source.name": "models/churn/mlci.yaml",
                 "mlflow.source.type": "LOCAL",
                 "mlflow.source.git.commit": "0123456789abcdef",
                 "mlflow.source.git.branch": "main",
                 "mlflow.source.git.repoURL": "https://github.com/acme/models"}
    unknown = {**tags, TAG + "git.commit": "unknown", TAG + "git.branch": "unknown",
               TAG + "git.repo": "unknown", TAG + "git.dirty": "false", TAG + "trigger": "local"}
    t = mlflow_tags(_cfg(tmp_path / "x"), unknown)
    assert t["mlflow.runName"] == "churn-nogit-local"
    assert not {"mlflow.source.git.commit", "mlflow.source.git.branch",
                "mlflow.source.git.repoURL"} & set(t)


def test_the_documented_major_tag_is_the_package_major() -> None:
    """Users pin `org/mlci-actions/<action>@vN`: the release moves `v<major of the version>`,
    so every pin the docs show must be that major (a 0.x package would move `v0`, and every
    documented `@v1` would resolve to nothing)."""
    import mlci

    major = "v" + mlci.__version__.split(".")[0]
    docs = [REPO / "README.md", *REPO.glob("docs/*.md"), *REPO.glob("*/README.md"),
            *REPO.glob("examples/workflows/*.yml")]
    pins = {m for p in docs for m in re.findall(r"org/mlci-actions/[\w./-]*@(v\d+)\b",
                                                 p.read_text(encoding="utf-8"))}
    assert pins == {major}, pins
