"""The monitor action's glue (python -m mlci.gha monitor): inputs as MLCI_* variables in,
step outputs and the job summary out, as the composite step runs it on a runner."""

from __future__ import annotations

import http.server
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_glue, run_mlci
from e2e.loopback import serving


class Recorder(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Recorder.received.append({"path": self.path, "body": body})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def champion(trained_iris: Path, tmp_path: Path) -> Path:
    root = tmp_path / "iris"
    shutil.copytree(trained_iris, root)
    r = run_mlci("promote", "--to", "champion", "--version", "1", cwd=root)
    assert r.code == 0, r.err
    return root


def batch(root: Path, shift: float) -> Path:
    df = pd.read_csv(root / "data" / "train.csv")
    rng = np.random.default_rng(3)
    w = df.sample(200, replace=True, random_state=1).reset_index(drop=True)
    num = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    w[num] = (w[num] + rng.normal(0, 0.05, (len(w), 4)) + shift).round(2)
    path = root / f"batch-{shift}.csv"
    w.to_csv(path, index=False)
    return path


@pytest.fixture
def api():
    Recorder.received = []
    with serving(Recorder) as url:
        yield url


def run_action(root: Path, tmp_path: Path, runner: dict[str, str] | None = None,
               **inputs: str) -> tuple[int, dict[str, str], str]:
    out, summary = tmp_path / "github_output", tmp_path / "summary.md"
    out.write_text("")
    summary.write_text("")
    env = {"GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary), **(runner or {})}
    env.update({f"MLCI_{k.upper()}": v for k, v in inputs.items()})
    p = run_glue("monitor", cwd=root, env=env)
    values, lines = {}, out.read_text().splitlines()
    while lines:  # name<<delimiter / value / delimiter
        name, delim = lines.pop(0).split("<<", 1)
        end = lines.index(delim)
        values[name], lines = "\n".join(lines[:end]), lines[end + 1:]
    return p.code, values, summary.read_text() + p.err


def test_drift_sets_the_outputs_exports_and_dispatches(champion: Path, tmp_path: Path,
                                                       api: str) -> None:
    code, out, summary = run_action(
        champion, tmp_path, {"GITHUB_API_URL": api, "GITHUB_REPOSITORY": "org/app"},
        window=str(batch(champion, 1.2)), dispatch="true", export="fresh/window.csv",
        source_url="s3://bucket/window.csv", fail_on_alert="false", github_token="t0ken")
    assert code == 0, summary  # fail-on-alert: 'false'
    assert out["drift"] == "true" and out["alert"] == "true" and out["dispatched"] == "true"
    assert "petal_length" in json.loads(out["drifted-columns"])
    assert out["report-path"] == str((champion / ".mlci" / "monitor.md").resolve())
    assert "mlci monitor: iris v1" in summary  # the report went to the job summary
    assert len(pd.read_csv(champion / "fresh" / "window.csv")) == 200
    [call] = Recorder.received
    assert call["path"] == "/repos/org/app/dispatches"
    assert call["body"]["event_type"] == "mlci-retrain"
    assert call["body"]["client_payload"]["source"] == "s3://bucket/window.csv"


def test_no_drift_and_an_alert_that_fails_the_step(champion: Path, tmp_path: Path) -> None:
    code, out, _ = run_action(champion, tmp_path, window=str(batch(champion, 0.0)))
    assert code == 0
    assert (out["drift"], out["alert"], out["dispatched"]) == ("false", "false", "false")
    code, out, _ = run_action(champion, tmp_path, window=str(batch(champion, 1.2)))
    assert code == 1 and out["alert"] == "true"  # fail-on-alert defaults to 'true'
