"""The release workflow's promises (trusted publishing with the narrowest permissions, the
version check it runs, the tags it moves), Marketplace branding of every action, and MLflow's
standard tags and run name derived from mlci's own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
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
    (pypi,) = [s["uses"] for s in publish["steps"] if "gh-action-pypi-publish" in s["uses"]]
    assert re.fullmatch(r"pypa/gh-action-pypi-publish@[0-9a-f]{40}", pypi)
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


def test_tag_step_moves_the_major_tag() -> None:
    run = _workflow()["jobs"]["tag"]["steps"][0]["run"]
    assert 'major="v${MLCI_VERSION%%.*}"' in run
    assert "refs/tags/v$MLCI_VERSION" in run and "-F force=true" in run


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
