"""`mlci data pr` and `mlci.gha.pulls` against the local GitHub API double on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import run_mlci
from e2e.fake_github import FakeGitHub

from mlci.gha import pulls
from mlci.gha.github import MAX_BODY, GitHub, GitHubError

TOKEN = "ghs_test_token_value"
BODY = "## ✅ mlci: iris v2: gate passed\n\n### Data update\n\n| rows | 150 → 180 |\n"


@pytest.fixture
def gh():
    with FakeGitHub() as server:
        yield server


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / ".mlci").mkdir()
    (tmp_path / ".mlci" / "report.md").write_text(BODY, encoding="utf-8")
    return tmp_path


def client(gh: FakeGitHub) -> GitHub:
    return GitHub(api_url=gh.url, repo="o/r", token=TOKEN, max_wait=0)


def env_for(gh: FakeGitHub, **extra: str) -> dict[str, str]:
    return {"GITHUB_API_URL": gh.url, "GITHUB_REPOSITORY": "o/r", "GITHUB_TOKEN": TOKEN,
            "MLCI_COMMENT_MAX_WAIT": "0", **extra}


def test_creates_then_updates_the_one_pull_request_of_a_branch(gh) -> None:
    first = pulls.open_or_update(client(gh), branch="mlci/data", base="main", title="t1",
                                 body="one")
    assert (first.action, first.number) == ("created", 1)
    second = pulls.open_or_update(client(gh), branch="mlci/data", base="main", title="t2",
                                  body="two")
    assert (second.action, second.number, second.url) == ("updated", 1, first.url)
    [pr] = gh.state.pulls
    assert (pr["title"], pr["body"], pr["head"]["ref"], pr["base"]["ref"]) == \
        ("t2", "two", "mlci/data", "main")
    lists = [r for r in gh.state.requests if r["method"] == "GET"]
    assert lists[0]["query"] == {"state": "open", "head": "o:mlci/data", "base": "main",
                                 "per_page": "100"}
    assert all(r["auth_ok"] for r in gh.state.requests)


def test_another_branch_or_a_closed_one_gets_a_new_pull_request(gh) -> None:
    pulls.open_or_update(client(gh), branch="a", base="main", title="t", body="b")
    gh.state.pulls[0]["state"] = "closed"
    again = pulls.open_or_update(client(gh), branch="a", base="main", title="t", body="b")
    other = pulls.open_or_update(client(gh), branch="b", base="main", title="t", body="b")
    assert (again.action, again.number, other.number) == ("created", 2, 3)


def test_a_race_with_another_job_ends_in_an_update(gh, monkeypatch) -> None:
    real = pulls.find_open
    calls = []

    def late(g, branch, base):  # the first lookup misses the PR another job just opened
        calls.append(branch)
        if len(calls) == 1:
            g.request("POST", "repos/o/r/pulls", {"title": "x", "head": branch, "base": base})
            return None
        return real(g, branch, base)

    monkeypatch.setattr(pulls, "find_open", late)
    pr = pulls.open_or_update(client(gh), branch="mlci/data", base="main", title="t", body="b")
    assert pr.action == "updated" and len(gh.state.pulls) == 1
    assert gh.state.pulls[0]["body"] == "b"


def test_a_branch_missing_from_the_remote_is_refused(gh, tmp_path) -> None:
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    gh.state.git_remote = str(bare)
    with pytest.raises(GitHubError) as err:
        pulls.open_or_update(client(gh), branch="nope", base="main", title="t", body="b")
    assert err.value.status == 422


def test_long_bodies_are_cut_to_the_limit(gh) -> None:
    pulls.open_or_update(client(gh), branch="a", base="main", title="t", body="x" * 70_000)
    body = gh.state.pulls[0]["body"]
    assert len(body) == MAX_BODY and body.endswith("(truncated)")


def test_cli_opens_then_updates(gh, work) -> None:
    r = run_mlci("data", "pr", "--branch", "mlci/data-1", "--base", "main", "--json",
                 cwd=work, env=env_for(gh))
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out == {"url": "https://github.test/o/r/pull/1", "number": 1, "action": "created",
                   "branch": "mlci/data-1", "base": "main"}
    assert gh.state.pulls[0]["body"] == BODY and gh.state.pulls[0]["title"] == "mlci: data update"
    (work / ".mlci" / "report.md").write_text("new body", encoding="utf-8")
    r = run_mlci("data", "pr", cwd=work, env=env_for(
        gh, MLCI_BRANCH="mlci/data-1", MLCI_BASE="main", MLCI_TITLE="data: new rows"))
    assert r.code == 0, r.err
    assert r.out.strip() == "updated pull request https://github.test/o/r/pull/1"
    assert [(p["title"], p["body"]) for p in gh.state.pulls] == [("data: new rows", "new body")]
    assert TOKEN not in r.out + r.err


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--branch", "b", "--base", "main", "--body", "missing.md"], {}, "no report at missing.md"),
    (["--branch", "b", "--base", "main"], {"GITHUB_REPOSITORY": ""}, "no repository"),
    (["--branch", "b", "--base", "main"], {"GITHUB_TOKEN": ""}, "no token"),
    (["--branch", "main", "--base", "main"], {}, "the branch and the base are the same"),
])
def test_bad_input_is_one_line_exit_2(gh, work, args, env, message) -> None:
    r = run_mlci("data", "pr", *args, cwd=work, env=env_for(gh, **env))
    assert r.code == 2, r.out + r.err
    assert r.err.strip().startswith("mlci: error: ") and message in r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert gh.state.pulls == []


def test_read_only_token_says_which_permission(gh, work) -> None:
    gh.state.read_only = True
    r = run_mlci("data", "pr", "--branch", "b", "--base", "main", cwd=work, env=env_for(gh))
    assert r.code == 2 and "pull-requests: write" in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_api_down_is_exit_3_one_line(gh, work) -> None:
    gh.state.broken = True
    r = run_mlci("data", "pr", "--branch", "b", "--base", "main", cwd=work,
                 env=env_for(gh, MLCI_COMMENT_MAX_WAIT="0"))
    assert r.code == 3 and "GitHub API 500" in r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
