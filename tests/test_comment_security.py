"""The GitHub client and the posters where they meet hostile or unusual answers: an outsider's
comment carrying our marker, a redirect to another host, GitHub's documented rate limits (with
an injected sleep and clock: nothing really waits), a fork's read-only token with `cml`, and
images that would show broken. All against the GitHub double on 127.0.0.1."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_mlci
from e2e.fake_github import FakeGitHub

from mlci.gha import github, posters

TOKEN = "ghs_test_token_value"
MARKER = "mlci report · ml"
RECORDER_DIR = Path(__file__).parent / "e2e" / "doubles" / "setup-cml" / "bin"


@pytest.fixture
def gh():
    with FakeGitHub() as server:
        server.state.token = TOKEN
        yield server


class Clock:
    """Injected sleep and clock: records each wait and moves time forward by it."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now, self.waits = now, []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def time(self) -> float:
        return self.now


def client(server: FakeGitHub, clock: Clock | None = None, **kw) -> github.GitHub:
    clock = clock or Clock()
    return github.GitHub(api_url=server.url, repo="o/r", token=TOKEN, sleep=clock.sleep,
                         clock=clock.time, **kw)


# ------------------------------------------------------------------ who may be updated


def test_an_outsiders_comment_with_our_marker_is_never_edited(gh: FakeGitHub) -> None:
    planted = gh.add_issue_comment(7, f"click here\n\n<!-- {MARKER} -->\n", user="mallory")
    done = github.post_sticky(client(gh), "## ✅ report", MARKER, author="github-actions[bot]",
                              pr=7)
    assert done.action == "created"
    assert planted["body"].startswith("click here")  # untouched
    assert [c["user"]["login"] for c in gh.state.issue_comments[7]] == [
        "mallory", "github-actions[bot]"]
    again = github.post_sticky(client(gh), "## ✅ v2", MARKER, author="github-actions[bot]", pr=7)
    assert again.action == "updated" and again.comment_id == done.comment_id
    assert planted["body"].startswith("click here")


def test_the_tokens_own_login_is_the_author(gh: FakeGitHub) -> None:
    assert client(gh).login() == "github-actions[bot]"  # GITHUB_TOKEN: GET /user is refused
    gh.state.login = "release-bot"
    assert client(gh).login() == "release-bot"  # a user's token


def test_the_cli_updates_only_its_own_comment(gh: FakeGitHub, tmp_path: Path) -> None:
    (tmp_path / ".mlci").mkdir()
    (tmp_path / ".mlci" / "report.md").write_text("## ✅ ok\n", encoding="utf-8")
    planted = gh.add_issue_comment(7, f"x\n\n<!-- {MARKER} -->\n", user="mallory")
    ev = tmp_path / "event.json"
    ev.write_text(json.dumps({"pull_request": {"number": 7}}))
    env = {"GITHUB_API_URL": gh.url, "GITHUB_REPOSITORY": "o/r", "GITHUB_TOKEN": TOKEN,
           "GITHUB_EVENT_PATH": str(ev), "GITHUB_WORKFLOW": "ml"}
    r = run_mlci("comment", "--json", cwd=tmp_path, env=env)
    assert r.code == 0, r.err
    assert json.loads(r.out)["action"] == "created" and planted["body"].startswith("x")


# ------------------------------------------------------------------ where the token goes


def test_a_redirect_to_another_host_gets_no_token(gh: FakeGitHub) -> None:
    with FakeGitHub() as elsewhere:
        gh.state.redirect_to = elsewhere.url.replace("127.0.0.1", "localhost")
        elsewhere.state.token = TOKEN
        with pytest.raises(github.GitHubError) as err:
            client(gh).request("GET", "repos/o/r/issues/7/comments")
        assert err.value.status == 401  # the other host saw no credentials
        [seen] = elsewhere.state.requests
        assert seen["path"] == "/repos/o/r/issues/7/comments" and not seen["authorization"]
    assert gh.state.requests[0]["auth_ok"]


def test_a_next_link_to_another_host_is_fetched_without_the_token(gh: FakeGitHub) -> None:
    c = client(gh)
    headers = c._headers("https://attacker.example/steal", has_body=False)
    assert "Authorization" not in headers
    assert c._headers(f"{gh.url}/repos/o/r", has_body=False)["Authorization"].endswith(TOKEN)


# ------------------------------------------------------------------ rate limits


def test_a_secondary_rate_limit_waits_a_minute_then_doubles(gh: FakeGitHub) -> None:
    gh.state.rate_limited, gh.state.rate_limit_kind = 2, "secondary"
    clock = Clock()
    resp = client(gh, clock).request("GET", "repos/o/r/issues/7/comments")
    assert resp.status == 200
    assert clock.waits == [60.0, 120.0]  # at least one minute, then exponential


def test_a_secondary_rate_limit_is_not_a_read_only_token(gh: FakeGitHub) -> None:
    gh.state.rate_limited, gh.state.rate_limit_kind = 9, "secondary"
    with pytest.raises(github.RateLimited) as err:
        client(gh, retries=2).request("GET", "repos/o/r/issues/7/comments")
    assert not isinstance(err.value, github.ReadOnlyToken) and "secondary rate limit" in str(
        err.value)


@pytest.mark.parametrize(("headers", "wait"), [
    ({"retry-after": "17"}, 17.0),
    ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(1_700_000_000 + 300)}, 301.0),
    ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "0"}, 0.0),
    ({}, 60.0),  # 429 with no header
])
def test_documented_waits(headers: dict[str, str], wait: float) -> None:
    assert github.rate_limit_wait(429, headers, "", 1_700_000_000.0) == wait


def test_other_403s_are_not_rate_limits() -> None:
    assert github.rate_limit_wait(403, {}, "Resource not accessible by integration", 0.0) is None
    assert github.rate_limit_wait(403, {"x-ratelimit-remaining": "12"}, "Forbidden", 0.0) is None
    assert github.rate_limit_wait(404, {"retry-after": "5"}, "", 0.0) is None


def test_a_wait_beyond_max_wait_fails_instead_of_retrying_early(gh: FakeGitHub) -> None:
    gh.state.rate_limited, gh.state.rate_limit_kind = 1, "secondary"
    clock = Clock()
    with pytest.raises(github.RateLimited, match="retry in 60 s"):
        client(gh, clock, max_wait=30).request("GET", "repos/o/r/issues/7/comments")
    assert clock.waits == [] and len(gh.state.requests) == 1


def test_comment_max_wait_takes_a_duration(gh: FakeGitHub, tmp_path: Path) -> None:
    (tmp_path / ".mlci").mkdir()
    (tmp_path / ".mlci" / "report.md").write_text("## ✅ ok\n", encoding="utf-8")
    ev = tmp_path / "event.json"
    ev.write_text(json.dumps({"pull_request": {"number": 3}}))
    env = {"GITHUB_API_URL": gh.url, "GITHUB_REPOSITORY": "o/r", "GITHUB_TOKEN": TOKEN,
           "GITHUB_EVENT_PATH": str(ev), "MLCI_COMMENT_MAX_WAIT": "1m"}
    r = run_mlci("comment", "--json", cwd=tmp_path, env=env)
    assert r.code == 0, r.err
    r = run_mlci("comment", cwd=tmp_path, env=env | {"MLCI_COMMENT_MAX_WAIT": "soon"})
    assert r.code == 2 and "Traceback" not in r.err
    assert "Invalid value for '--max-wait': 'soon' is not a duration" in r.err, r.err


# ------------------------------------------------------------------ cml and images


def failing_cml(tmp_path: Path, message: str) -> Path:
    """A `cml` standing in for CML meeting GitHub's refusal: prints it and exits 1."""
    bin_dir = tmp_path / "cml-bin"
    bin_dir.mkdir()
    exe = bin_dir / "cml"
    exe.write_text(f"#!/bin/sh\necho '{message}' >&2\nexit 1\n")
    exe.chmod(0o755)
    return bin_dir


def test_cml_on_a_read_only_token_falls_back_to_the_summary(tmp_path: Path) -> None:
    (tmp_path / ".mlci").mkdir()
    (tmp_path / ".mlci" / "report.md").write_text("## ✅ report\n", encoding="utf-8")
    (tmp_path / "event.json").write_text(json.dumps({"pull_request": {"number": 4}}))
    bin_dir = failing_cml(tmp_path, "HttpError: Resource not accessible by integration")
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GITHUB_TOKEN": "ghs_x",
           "GITHUB_EVENT_PATH": str(tmp_path / "event.json"),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
    r = run_mlci("comment", "--poster", "cml", "--json", cwd=tmp_path, env=env)
    assert r.code == 0, r.err
    assert json.loads(r.out) == {"poster": "cml", "target": "summary", "url": "",
                                 "action": "summary"}
    assert "::warning" in r.err and "job summary" in r.err
    assert (tmp_path / "summary.md").read_text().startswith("## ✅ report")


def test_any_other_cml_failure_is_exit_3(tmp_path: Path) -> None:
    (tmp_path / ".mlci").mkdir()
    (tmp_path / ".mlci" / "report.md").write_text("## ✅ report\n", encoding="utf-8")
    (tmp_path / "event.json").write_text(json.dumps({"pull_request": {"number": 4}}))
    bin_dir = failing_cml(tmp_path, "getaddrinfo ENOTFOUND api.github.com")
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "GITHUB_EVENT_PATH": str(tmp_path / "event.json")}
    r = run_mlci("comment", "--poster", "cml", cwd=tmp_path, env=env)
    assert r.code == 3 and "ENOTFOUND" in r.err and "Traceback" not in r.err


REPORT = ("## ✅ iris\n\n### Confusion matrix\n\n![confusion matrix](plots/confusion_matrix.png)"
          "\n\n| true \\ predicted | a |\n|---|---:|\n| **a** | 3 |\n\n"
          "![hosted](https://asset.cml.dev/abc.png)\n")


def test_unpublished_images_become_a_link_to_the_artifact() -> None:
    text = posters.unpublished_images(REPORT, "https://github.com/o/r/actions/runs/5")
    assert "![confusion matrix]" not in text
    assert ("_confusion matrix: `plots/confusion_matrix.png` in the run's [`mlci-report` "
            "artifact](https://github.com/o/r/actions/runs/5#artifacts)_") in text
    assert "![hosted](https://asset.cml.dev/abc.png)" in text  # published: kept
    assert "| **a** | 3 |" in text  # the text rendering stays


@pytest.mark.parametrize(("publish", "embedded"), [(False, False), (True, True)])
def test_cml_gets_local_images_only_when_it_publishes_them(tmp_path: Path, publish: bool,
                                                           embedded: bool) -> None:
    (tmp_path / ".mlci").mkdir()
    (tmp_path / ".mlci" / "report.md").write_text(REPORT, encoding="utf-8")
    (tmp_path / "event.json").write_text(json.dumps({"pull_request": {"number": 12}}))
    env = {"PATH": f"{RECORDER_DIR}{os.pathsep}{os.environ['PATH']}",
           "MLCI_E2E_CML_LOG": str(tmp_path / "cml.jsonl"), "GITHUB_TOKEN": "ghs_secret",
           "GITHUB_EVENT_PATH": str(tmp_path / "event.json"),
           "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r",
           "GITHUB_RUN_ID": "5", **({"MLCI_PUBLISH_IMAGES": "true"} if publish else {})}
    r = run_mlci("comment", "--poster", "cml", cwd=tmp_path, env=env)
    assert r.code == 0, r.err
    [call] = [json.loads(x) for x in (tmp_path / "cml.jsonl").read_text().splitlines()]
    assert ("![confusion matrix](plots/confusion_matrix.png)" in call["body"]) is embedded
    assert ("actions/runs/5#artifacts" in call["body"]) is not embedded
    assert (tmp_path / ".mlci" / "report.md").read_text() == REPORT  # the report stays whole
    assert sorted(p.name for p in (tmp_path / ".mlci").iterdir()) == ["report.md"]  # cleaned


def test_the_github_poster_never_posts_a_broken_image(gh: FakeGitHub, tmp_path: Path) -> None:
    (tmp_path / ".mlci").mkdir()
    (tmp_path / ".mlci" / "report.md").write_text(REPORT, encoding="utf-8")
    ev = tmp_path / "event.json"
    ev.write_text(json.dumps({"pull_request": {"number": 8}}))
    env = {"GITHUB_API_URL": gh.url, "GITHUB_REPOSITORY": "o/r", "GITHUB_TOKEN": TOKEN,
           "GITHUB_EVENT_PATH": str(ev), "GITHUB_SERVER_URL": "https://github.com",
           "GITHUB_RUN_ID": "9"}
    r = run_mlci("comment", cwd=tmp_path, env=env)
    assert r.code == 0, r.err
    body = gh.state.issue_comments[8][0]["body"]
    assert "](plots/" not in body and "actions/runs/9#artifacts" in body
