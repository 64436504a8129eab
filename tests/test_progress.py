"""Progress on stderr (a redrawn line on a terminal, a line per stage in CI logs) and stdout
left to the result: `mlci run --json` prints nothing but one JSON document on stdout."""

from __future__ import annotations

import io
import json
import re
import time

import pytest
from conftest import run_mlci

from mlci.progress import Progress, step


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _auto(monkeypatch) -> None:
    monkeypatch.delenv("MLCI_PROGRESS", raising=False)


def test_ci_log_gets_a_line_per_stage_and_a_heartbeat() -> None:
    out, clock = io.StringIO(), Clock()
    with Progress("validate", stream=out, clock=clock, heartbeat=30) as p:
        clock.now += 10
        p.update(1, total=4, detail="train.csv")  # before the heartbeat: nothing
        clock.now += 25
        p.update(2, total=4, detail="golden.csv")
        clock.now += 1.5
    assert out.getvalue().splitlines() == [
        "validate  [##########..........] 2/4  golden.csv  35.0s",
        "validate: done in 36.5s"]
    assert "\r" not in out.getvalue()


def test_a_long_step_beats_in_a_log_without_updates() -> None:
    out = io.StringIO()
    with Progress("canary", stream=out, heartbeat=0.05, tick=1.0):
        time.sleep(0.3)  # a wait with nothing to report, like a canary's bake
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3 and all(re.fullmatch(r"canary  0\.\ds", x) for x in lines[:-1])
    assert lines[-1].startswith("canary: done in 0.")


def test_a_failed_stage_says_why() -> None:
    out, clock = io.StringIO(), Clock()
    with pytest.raises(ValueError), Progress("train", stream=out, clock=clock):
        clock.now += 62
        raise ValueError("no target column\nsecond line")
    assert out.getvalue().splitlines()[-1] == \
        "train: failed after 1m02s (no target column)"


def test_bad_input_and_failed_verdicts_add_no_line() -> None:
    from mlci.errors import MlciError, VerdictFailed

    for exc in (MlciError("data/train.csv: no column 'species'"), VerdictFailed("gate failed")):
        out = io.StringIO()
        with pytest.raises(type(exc)), Progress("train", stream=out):
            raise exc
        assert out.getvalue() == ""


def test_terminal_redraws_one_line() -> None:
    out, clock = Terminal(), Clock()
    with Progress("canary", stream=out, clock=clock) as p:
        clock.now += 3
        p.update(detail="step 1/3 at 5%")
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("canary: done in 3.0s\n")
    assert "\r\x1b[2Kcanary  step 1/3 at 5%  3.0s" in text


def test_progress_can_be_turned_off(monkeypatch) -> None:
    monkeypatch.setenv("MLCI_PROGRESS", "off")
    out = Terminal()
    with Progress("train", stream=out) as p:
        p.update(1)
    assert out.getvalue() == ""


def test_a_steps_own_prints_go_to_stderr(capsys) -> None:
    def noisy(x: int) -> int:
        print("View run at http://127.0.0.1:5000/#/experiments/1")
        return x + 1

    assert step("train", noisy, 1) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert "View run" in cap.err and "train: done in" in cap.err


def test_run_json_prints_only_json_on_stdout_and_names_the_run(iris) -> None:
    r = run_mlci("run", "--json", cwd=iris, env={"CI": "true"})
    assert r.code == 0, r.err
    result = json.loads(r.out)  # all of stdout, not its last line
    assert result["verdict"] == "pass" and set(result["seconds"]) >= {"validate", "train"}
    for stage in ("validate", "train", "evaluate", "report"):
        assert re.search(rf"^{stage}: done in", r.err, re.M), r.err
    assert "registered models:/iris/1 " in r.err
    # the same run, as MLflow shows it: its standard source tags and a name that says what
    import subprocess

    from mlflow import MlflowClient

    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=iris, capture_output=True,
                         text=True, check=True).stdout.strip()
    run_id = json.loads((iris / ".mlci" / "run.json").read_text())["run_id"]
    run = MlflowClient(f"sqlite:///{iris / '.mlci' / 'mlflow.db'}").get_run(run_id)
    assert run.info.run_name == f"iris-{sha[:7]}-local"
    tags = run.data.tags
    assert tags["mlflow.source.git.commit"] == sha == tags["mlci.git.commit"]
    assert tags["mlflow.source.git.branch"] == "main"
    assert tags["mlflow.source.name"] == "mlci.yaml" and tags["mlflow.source.type"] == "JOB"
