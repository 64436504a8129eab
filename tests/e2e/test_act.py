"""The workflows users copy from examples/workflows/, run end to end by `act` on the Iris example.

A handful of runs on purpose (each is a real job: install, Great Expectations, MLflow, report):
  1. two jobs on a pull request, cold cache, CML poster: the `ml` job runs the stages in one
     step (each stage's outputs) and uploads the report as an artifact, the `comment` job (no
     checkout) posts it;
  2. the reusable workflow on a push to main, outputs read by a following job; a push saves
     the venv cache (a pull request never does);
  3. the two-job workflow again with an impossible gate and the built-in GitHub poster:
     warm cache (the one the push saved), fails at evaluate, still posts the report;
  4. the root action on a pull request (one step), built-in poster, comment updated in place.
Hostile text (`"; touch /tmp/pwned #`) sits in the PR title, the branch name and a config value.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import mlci
from e2e.fake_github import FakeGitHub
from e2e.support import INJECTION, SAVE_STEP, after_job, save_step

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "workflows"
PWNED = Path("/tmp/pwned")
CONFIG = (Path(__file__).resolve().parents[2] / "examples" / "iris" / "mlci.yaml").read_text()
HOSTILE_CONFIG = CONFIG + f"report:\n  title: '{INJECTION}'\n"
IMPOSSIBLE_GATE = CONFIG.replace("min: {accuracy: 0.90}", "min: {accuracy: 1.01}")


def example(name: str, save: bool = True) -> str:
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    if not save:
        return text
    if "\n  comment:\n" in text:  # two jobs: save what each of them did
        first, second = text.split("\n  comment:\n", 1)
        return (first.rstrip("\n") + "\n" + SAVE_STEP + "  comment:\n" + second.rstrip("\n")
                + "\n" + save_step("comment"))
    return text.rstrip("\n") + "\n" + SAVE_STEP


def pr_event(number: int = 7) -> dict:
    return {"number": number, "pull_request": {
        "number": number, "title": INJECTION,
        "head": {"ref": f"feat/{INJECTION}", "sha": "1" * 40, "repo": {"full_name": "u/r"}},
        "base": {"ref": "main", "sha": "2" * 40, "repo": {"full_name": "u/r"}}},
        "repository": {"full_name": "u/r", "default_branch": "main"}}


@pytest.fixture(autouse=True)
def no_pwned():
    PWNED.unlink(missing_ok=True)
    yield
    assert not PWNED.exists(), "hostile text was executed"


@pytest.fixture(scope="module")
def github():
    with FakeGitHub() as gh:
        gh.state.token = "ghs_e2e_secret_token"
        yield gh


# a step after `setup` runs `mlci` by name: setup put it on PATH (GITHUB_PATH)
ON_PATH = ("        uses: org/mlci-actions/setup@v1\n"
           "      - run: 'echo \"mlci-on-PATH=$(command -v mlci)\" && mlci --version'\n")


@pytest.fixture(scope="module")
def cold(act_env):
    wf = example("mlci-steps.yml").replace("        uses: org/mlci-actions/setup@v1\n",
                                           ON_PATH, 1)
    return act_env(wf, "pull_request", pr_event(), name="cold",
                   files={"mlci.yaml": HOSTILE_CONFIG})


def test_two_jobs_pull_request(cold) -> None:
    assert cold.code == 0, cold.log[-4000:]
    assert re.search(r"mlci-on-PATH=\S*/mlci-bin/mlci", cold.log), cold.log[-4000:]
    out = cold.outputs()["mlci"]["outputs"]  # every stage's outputs, from one step
    assert out["passed"] == "true" and out["validation-report"].endswith("/validation.json")
    assert len(out["run-id"]) == 32
    assert out["model-version"] == "1"
    assert out["model-uri"] == "models:/iris/1"
    assert out["verdict"] == "pass" and json.loads(out["failed"]) == []
    assert json.loads(out["metrics"])["accuracy"] >= 0.9
    assert out["report-path"].endswith("/.mlci/report.md")
    assert out["comment-url"] == ""  # the ml job posts nothing
    comment = cold.outputs("comment")
    assert comment["report"]["outputs"]["comment-url"].startswith("https://github.com/")
    report = cold.file("report.md")
    assert report.splitlines()[0].startswith("## ✅")
    assert f"Summary - {report.splitlines()[0]}" in cold.log  # act echoes the job summary
    [call] = cold.cml_calls()
    assert call["argv"] == ["cml", "comment", "update", "--target=pr/7",
                            "--watermark-title=mlci report · ml", "--no-publish",
                            "report.comment.md"]
    assert call["token_set"]
    # no broken image: the plot CML was not allowed to publish links to the run's artifact,
    # and the confusion matrix is there as a table
    assert "![confusion matrix](plots/" in report and "](plots/" not in call["body"]
    assert "`mlci-report` artifact" in call["body"] and "| true \\ predicted |" in call["body"]
    assert call["body"].splitlines()[0] == report.splitlines()[0]
    assert INJECTION in report  # the config value arrives as text, nothing ran
    assert "ghs_e2e_secret_token" not in cold.log


def test_the_report_plots_and_data_docs_are_the_runs_artifact(cold) -> None:
    art = cold.artifact("mlci-report")
    assert (art / "report.md").read_text(encoding="utf-8") == cold.file("report.md")
    assert (art / "plots" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert any((art / "data-docs").rglob("*.html"))
    events = cold.events()
    assert any(e.startswith("upload-artifact name=mlci-report ") for e in events), events
    assert "download-artifact name=mlci-report" in events


def test_lineage_of_the_model_trained_by_the_workflow(cold) -> None:
    """`mlci lineage` answers where the act-trained model came from, from the store it left."""
    import subprocess
    import sys

    db = cold.dir / "saved" / "mlflow.db"
    assert db.is_file()
    mlci = str(Path(sys.executable).with_name("mlci"))
    p = subprocess.run([mlci, "lineage", "iris@candidate", "--json"], cwd=cold.dir,
                       capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "MLCI_TRACKING_URI": f"sqlite:///{db}"})
    assert p.returncode == 0, p.stderr
    lin = json.loads(p.stdout)
    assert lin["model"]["version"] == "1"
    assert len(lin["git"]["commit"]) == 40
    assert lin["ci"]["trigger"] == "pull_request"
    assert "/actions/runs/" in (lin["ci"]["run_url"] or "")
    for key in ("train", "golden"):
        assert lin["data"][key]["hash"].startswith("sha256:")
    assert lin["validation"]["success"] == "true"
    assert lin["validation"]["digest"].startswith("sha256:")
    assert lin["evaluation"]["gate_passed"] == "true"


def test_cold_cache_installs_and_a_pull_request_never_saves(cold) -> None:
    events = cold.events()
    key = f"cache restore key=mlci-venv-{mlci.__version__}-"
    assert any(e.startswith(key) and e.endswith("hit=false") for e in events), events
    assert not any(e.startswith("cache save") for e in events), events
    assert f"installed mlci {mlci.__version__}-" in cold.log
    assert not any(e.startswith("setup-python") for e in events)  # a Python 3.10+ exists


@pytest.fixture(scope="module")
def pushed(act_env):
    """The reusable workflow on a push to main: the run that saves the venv cache."""
    return act_env(example("mlci-reusable.yml", save=False) + after_job("ml"), "push", {
        "ref": "refs/heads/main", "after": "3" * 40,
        "repository": {"full_name": "u/r", "default_branch": "main"}}, name="reusable",
        timeout=1200)


def test_reusable_workflow_on_push(pushed) -> None:
    assert pushed.code == 0, pushed.log[-4000:]
    out = pushed.outputs()
    assert out["result"] == "success"
    assert (out["outputs"]["verdict"], out["outputs"]["model-version"]) == ("pass", "1")
    assert pushed.cml_calls() == []  # a push has no pull request: job summary only
    assert "no pull request in this event" in pushed.log
    # a push leaves a warm cache for the pull requests after it: it saved one, or found the
    # one an earlier run of this test session saved (a hit is never saved again)
    assert any(e.startswith("cache save key=mlci-venv-") and e.endswith("event=push")
               for e in pushed.events()) or any(
        e.startswith("cache restore key=mlci-venv-") and e.endswith("hit=true")
        for e in pushed.events()), pushed.events()


@pytest.mark.timeout(1200)
def test_failing_gate_fails_at_evaluate_and_still_reports(act_env, github, pushed) -> None:
    assert pushed.code == 0, pushed.log[-4000:]
    wf = example("mlci-steps.yml").replace(
        "          github-token: ${{ secrets.GITHUB_TOKEN }}",
        "          github-token: ${{ secrets.GITHUB_TOKEN }}\n          poster: github")
    run = act_env(wf, "pull_request", pr_event(8), name="gate", timeout=1200,
                  files={"mlci.yaml": IMPOSSIBLE_GATE}, extra_env={"MLCI_API_URL": github.url})
    assert run.code != 0
    step = run.outputs()["mlci"]
    assert step["outcome"] == "failure"
    out = step["outputs"]
    assert (out["passed"], out["model-version"], out["verdict"]) == ("true", "1", "fail")
    assert json.loads(out["failed"]) and out["report-path"].endswith("/.mlci/report.md")
    [comment] = github.state.issue_comments[8]
    assert comment["body"].startswith("## ❌") and "accuracy >= 1.01" in comment["body"]
    assert "](plots/" not in comment["body"]
    assert run.outputs("comment")["report"]["outputs"]["comment-url"] == comment["html_url"]
    assert run.cml_calls() == []
    # warm: the venv came from the cache the push run saved, no install ran
    assert any(e.endswith("hit=true") for e in run.events()), run.events()
    assert "installed mlci" not in run.log


def test_root_action_one_step(act_env, github) -> None:
    wf = example("mlci-one-step.yml").replace(
        "          github-token: ${{ secrets.GITHUB_TOKEN }}",
        "          github-token: ${{ secrets.GITHUB_TOKEN }}\n          poster: github")
    github.add_issue_comment(9, "old\n\n<!-- mlci report · ml -->\n", "github-actions[bot]")
    run = act_env(wf, "pull_request", pr_event(9), name="root",
                  extra_env={"MLCI_API_URL": github.url})
    assert run.code == 0, run.log[-4000:]
    out = run.outputs()["mlci"]["outputs"]
    assert out["verdict"] == "pass" and out["model-version"] == "1"
    assert len(out["run-id"]) == 32 and out["report-path"].endswith("/.mlci/report.md")
    [comment] = github.state.issue_comments[9]
    assert comment["body"].startswith("## ✅")
    assert out["comment-url"] == comment["html_url"]
