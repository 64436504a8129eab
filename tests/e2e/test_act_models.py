"""Two models in one repository, each through the reusable code.yml, on one pull request, run by
`act` with the built-in GitHub poster against the GitHub double.

Each call has its own config (the Iris project at the root, a copy of it under `b/` named
`iris-b`), so each gets its own artifact and its own sticky comment: the first names it with
the `title` input, the second gets the default title keyed by its config. The comment job,
which alone holds `pull-requests: write`, runs none of the repository's code: it posts what the
pipeline job uploaded. An outsider's comment carrying the
first model's marker is left alone. The pull request also gets a tracking-server secret that
points nowhere: it must never reach the pipeline job, so both runs train on the local store.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from e2e.fake_github import FakeGitHub
from e2e.support import INJECTION

pytestmark = pytest.mark.e2e

IRIS = Path(__file__).resolve().parents[2] / "examples" / "iris"
WORKFLOW = """name: ml
on: [pull_request]
permissions: {}
jobs:
  iris:
    uses: org/mlci-actions/.github/workflows/code.yml@v1
    permissions:
      contents: read
      pull-requests: write
    with:
      poster: github
      title: iris report
    secrets:
      MLFLOW_TRACKING_URI: ${{ secrets.MLFLOW_TRACKING_URI }}
      AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}
  iris-b:
    uses: org/mlci-actions/.github/workflows/code.yml@v1
    permissions:
      contents: read
      pull-requests: write
    with:
      working-directory: b
      poster: github
    secrets:
      MLFLOW_TRACKING_URI: ${{ secrets.MLFLOW_TRACKING_URI }}
  after:
    needs: [iris, iris-b]
    runs-on: ubuntu-latest
    timeout-minutes: 5
    steps:
      - shell: bash
        env:
          A: ${{ needs.iris.outputs.comment-url }}
          B: ${{ needs.iris-b.outputs.comment-url }}
          VA: ${{ needs.iris.outputs.verdict }}
          VB: ${{ needs.iris-b.outputs.verdict }}
        run: |
          set -euo pipefail
          printf '{"a": "%s", "b": "%s", "va": "%s", "vb": "%s"}' "$A" "$B" "$VA" "$VB" \\
            > "$MLCI_E2E_DIR/outputs.json"
"""


def second_project() -> dict[str, str]:
    files = {f"b/{p.relative_to(IRIS)}": p.read_text(encoding="utf-8")
             for p in IRIS.rglob("*") if p.is_file() and ".mlci" not in p.parts}
    files["b/mlci.yaml"] = files["b/mlci.yaml"].replace("name: iris", "name: iris-b", 1)
    return files


@pytest.fixture(scope="module")
def two(act_env):
    with FakeGitHub() as gh:
        gh.state.token = "ghs_e2e_secret_token"
        planted = gh.add_issue_comment(5, "free prizes\n\n<!-- iris report -->\n",
                                       user="mallory")
        pr = {"number": 5, "pull_request": {
            "number": 5, "title": INJECTION,
            "head": {"ref": "feat/two", "sha": "1" * 40, "repo": {"full_name": "u/r"}},
            "base": {"ref": "main", "sha": "2" * 40, "repo": {"full_name": "u/r"}}},
            "repository": {"full_name": "u/r", "default_branch": "main"}}
        run = act_env(WORKFLOW, "pull_request", pr, name="two", files=second_project(),
                      extra_env={"MLCI_API_URL": gh.url},
                      secrets={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9/nowhere",
                               "AWS_SECRET_ACCESS_KEY": "aws_e2e_secret_value"},
                      timeout=1200)
        yield run, gh, planted


def test_each_model_gets_its_own_comment(two) -> None:
    run, gh, planted = two
    assert run.code == 0, run.log[-5000:]
    out = run.outputs()
    assert out["va"] == "pass" and out["vb"] == "pass"  # trained on the local store
    ours = [c for c in gh.state.issue_comments[5] if c["user"]["login"] == "github-actions[bot]"]
    assert len(ours) == 2
    by_marker = {("b/mlci.yaml" in c["body"]): c for c in ours}
    assert by_marker[False]["body"].rstrip().endswith("\n<!-- iris report -->")
    # the default title names the workflow (act gives the called workflow's name where GitHub
    # gives the caller's) and, for a config other than ./mlci.yaml, the config
    assert re.search(r"\n<!-- mlci report · [^>]+ · b/mlci\.yaml -->$",
                     by_marker[True]["body"].rstrip())
    assert "iris-b" in by_marker[True]["body"] and "iris-b" not in by_marker[False]["body"]
    assert {out["a"], out["b"]} == {c["html_url"] for c in ours}
    assert planted["body"].startswith("free prizes")  # the outsider's comment is not ours


def test_each_model_uploads_its_own_artifact(two) -> None:
    run, _, _ = two
    for name in ("mlci-report-mlci.yaml", "mlci-report-b-mlci.yaml"):
        art = run.artifact(name)
        assert (art / "report.md").is_file(), name
        assert (art / "plots" / "confusion_matrix.png").is_file(), name


def test_no_secret_and_no_broken_image_reach_the_pull_request(two) -> None:
    run, gh, _ = two
    assert "aws_e2e_secret_value" not in run.log and "ghs_e2e_secret_token" not in run.log
    for c in gh.state.issue_comments[5]:
        assert "](plots/" not in c["body"]
    assert not any(e.startswith("cache save") for e in run.events())
