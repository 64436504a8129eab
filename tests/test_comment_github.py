"""`mlci comment` against a real HTTP server on 127.0.0.1 that speaks the GitHub endpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_mlci
from e2e.fake_github import FakeGitHub

TOKEN = "ghs_test_token_value"
BODY = "## ✅ mlci: iris v1: gate passed\n\n| metric | value |\n|---|---|\n| accuracy | 0.97 |\n"


@pytest.fixture
def gh():
    with FakeGitHub() as server:
        yield server


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / ".mlci").mkdir()
    (tmp_path / ".mlci" / "report.md").write_text(BODY, encoding="utf-8")
    return tmp_path


def event(tmp_path: Path, pr: int | None) -> Path:
    ev = {"pull_request": {"number": pr, "title": "t"}} if pr else {"ref": "refs/heads/main"}
    p = tmp_path / "event.json"
    p.write_text(json.dumps(ev), encoding="utf-8")
    return p


def env_for(gh: FakeGitHub, work: Path, pr: int | None = 7, **extra: str) -> dict[str, str]:
    return {"GITHUB_API_URL": gh.url, "GITHUB_REPOSITORY": "o/r", "GITHUB_TOKEN": TOKEN,
            "GITHUB_EVENT_PATH": str(event(work, pr)), "GITHUB_WORKFLOW": "ml",
            "GITHUB_SHA": "0123abcd", "GITHUB_STEP_SUMMARY": str(work / "summary.md"),
            "MLCI_COMMENT_MAX_WAIT": "0", **extra}


def comment(work: Path, env: dict[str, str], *args: str):
    r = run_mlci("comment", "--json", *args, cwd=work, env=env)
    return r, (json.loads(r.out) if r.code == 0 and r.out.strip() else None)


def test_creates_once_then_updates_in_place(gh: FakeGitHub, work: Path) -> None:
    r, data = comment(work, env_for(gh, work))
    assert r.code == 0, r.err
    assert data["action"] == "created" and data["target"] == "pr"
    (work / ".mlci" / "report.md").write_text(BODY.replace("0.97", "0.99"), encoding="utf-8")
    r, data = comment(work, env_for(gh, work))
    assert r.code == 0, r.err
    assert data["action"] == "updated"
    mine = gh.state.issue_comments[7]
    assert len(mine) == 1
    assert "0.99" in mine[0]["body"] and "<!-- mlci report · ml -->" in mine[0]["body"]
    assert data["url"] == mine[0]["html_url"]
    assert all(q["auth_ok"] for q in gh.state.requests)
    assert TOKEN not in r.out + r.err


def test_pagination_finds_the_marker_past_100_comments(gh: FakeGitHub, work: Path) -> None:
    for i in range(120):
        gh.add_issue_comment(7, f"chatter {i}")
    ours = gh.add_issue_comment(7, "old report\n\n<!-- mlci report · ml -->\n",
                                "github-actions[bot]")
    for i in range(40):
        gh.add_issue_comment(7, f"more chatter {i}")
    r, data = comment(work, env_for(gh, work))
    assert r.code == 0, r.err
    assert data["action"] == "updated"
    assert len(gh.state.issue_comments[7]) == 161
    assert ours["body"].startswith("## ✅ mlci")
    listing = [q for q in gh.state.requests if q["method"] == "GET" and q["path"] != "/user"]
    assert [q["query"].get("page", "1") for q in listing] == ["1", "2"]
    assert all(q["query"]["per_page"] == "100" for q in listing)


def test_another_workflows_comment_is_left_alone(gh: FakeGitHub, work: Path) -> None:
    other = gh.add_issue_comment(7, "x\n\n<!-- mlci report · nightly -->\n", "github-actions[bot]")
    r, data = comment(work, env_for(gh, work))
    assert data["action"] == "created"
    assert other["body"].startswith("x")


def test_fork_token_falls_back_to_summary(gh: FakeGitHub, work: Path) -> None:
    gh.state.read_only = True
    r, data = comment(work, env_for(gh, work))
    assert r.code == 0, r.err
    assert data["target"] == "summary" and data["action"] == "summary"
    assert "::warning" in r.err and "job summary" in r.err
    assert (work / "summary.md").read_text(encoding="utf-8").startswith("## ✅ mlci")
    assert gh.state.issue_comments.get(7, []) == []
    assert TOKEN not in r.out + r.err


def test_summary_is_not_written_twice(gh: FakeGitHub, work: Path) -> None:
    (work / "summary.md").write_text(BODY + "\n", encoding="utf-8")
    gh.state.read_only = True
    r, _ = comment(work, env_for(gh, work))
    assert r.code == 0, r.err
    assert (work / "summary.md").read_text(encoding="utf-8").count("gate passed") == 1


@pytest.mark.parametrize("kind", ["429", "403"])
def test_rate_limit_is_waited_out(gh: FakeGitHub, work: Path, kind: str) -> None:
    gh.state.rate_limited, gh.state.rate_limit_kind = 2, kind
    r, data = comment(work, env_for(gh, work))
    assert r.code == 0, r.err
    assert data["action"] == "created"
    assert len(gh.state.requests) == 5  # 2 limited + who am I + list + create


def test_no_pull_request_writes_the_summary_only(gh: FakeGitHub, work: Path) -> None:
    r, data = comment(work, env_for(gh, work, pr=None))
    assert r.code == 0, r.err
    assert data["target"] == "summary"
    assert gh.state.requests == []
    assert "gate passed" in (work / "summary.md").read_text(encoding="utf-8")


def test_target_commit_comments_on_the_commit(gh: FakeGitHub, work: Path) -> None:
    env = env_for(gh, work, pr=None)
    r, data = comment(work, env, "--post-to", "commit")
    assert r.code == 0, r.err
    r, data = comment(work, env, "--post-to", "commit")
    assert data["action"] == "updated" and data["target"] == "commit"
    assert len(gh.state.commit_comments["0123abcd"]) == 1


def test_server_error_is_one_line_exit_3(gh: FakeGitHub, work: Path) -> None:
    gh.state.broken = True
    r, _ = comment(work, env_for(gh, work))
    assert r.code == 3
    assert r.err.strip().count("\n") == 0 and r.err.startswith("mlci: error: GitHub API 500")
    assert "Traceback" not in r.err


def test_bad_token_is_one_line_exit_3(gh: FakeGitHub, work: Path) -> None:
    r, _ = comment(work, env_for(gh, work, GITHUB_TOKEN="ghs_wrong"))
    assert r.code == 3 and "401" in r.err and "ghs_wrong" not in r.err


@pytest.mark.parametrize(("env_change", "args", "message"), [
    ({}, ("--body", "missing.md"), "no report at missing.md"),
    ({"GITHUB_TOKEN": ""}, (), "no token"),
    ({"GITHUB_REPOSITORY": ""}, (), "no repository"),
    ({}, ("--post-to", "nowhere"), "Invalid value for '--post-to'"),
    ({"GITHUB_SHA": ""}, ("--post-to", "commit"), "needs a commit"),
])
def test_bad_input_is_one_clear_error(gh: FakeGitHub, work: Path, env_change: dict[str, str],
                                      args: tuple[str, ...], message: str) -> None:
    env = env_for(gh, work, pr=None if "commit" in args else 7) | env_change
    r, _ = comment(work, env, *args)
    assert r.code == 2, r.err
    assert message in r.err
    assert "Traceback" not in r.err


def test_pr_target_without_a_pull_request_is_a_usage_error(gh: FakeGitHub, work: Path) -> None:
    r, _ = comment(work, env_for(gh, work, pr=None), "--post-to", "pr")
    assert r.code == 2 and "needs a pull request" in r.err


def test_shell_metacharacters_in_the_title_stay_text(gh: FakeGitHub, work: Path,
                                                     tmp_path: Path) -> None:
    pwned = Path("/tmp/pwned")
    pwned.unlink(missing_ok=True)
    r, data = comment(work, env_for(gh, work, MLCI_TITLE='"; touch /tmp/pwned #'))
    assert r.code == 0, r.err
    assert not pwned.exists()
    assert '<!-- "; touch /tmp/pwned # -->' in gh.state.issue_comments[7][0]["body"]


def test_long_report_is_cut_to_the_comment_limit(gh: FakeGitHub, work: Path) -> None:
    (work / ".mlci" / "report.md").write_text("## ✅ big\n" + "x" * 70_000, encoding="utf-8")
    r, data = comment(work, env_for(gh, work))
    assert r.code == 0, r.err
    body = gh.state.issue_comments[7][0]["body"]
    assert len(body) <= 65_536
    assert "… (truncated)" in body and body.rstrip().endswith("<!-- mlci report · ml -->")


def test_link_header_parsing() -> None:
    from mlci.gha.github import next_link

    assert next_link('<https://a/x?page=2>; rel="next", <https://a/x?page=9>; rel="last"') == \
        "https://a/x?page=2"
    assert next_link('<https://a/x?page=1>; rel="prev"') is None
    assert next_link("") is None
