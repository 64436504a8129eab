"""`mlci canary` and `mlci serve` on bad input: one line, exit 2, nothing moved or half
written; and the manual start / status / abort cycle."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import run_glue, run_mlci
from test_serve_support import GOOD, WORSE, alias, audit_events, clean_env, project

from mlci.cli import cli


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return project(tmp_path_factory.mktemp("cli") / "digits")


def mlci(root: Path, *args: str):
    r = CliRunner().invoke(cli, [*args[:2], "-c", str(root / "mlci.yaml"), "--out",
                                 str(root / ".mlci"), *args[2:]],
                           env={**clean_env(), "MLFLOW_TRACKING_URI": None})
    assert "Traceback" not in r.output
    return r


def one_line_error(r, code: int = 2) -> str:
    assert r.exit_code == code, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("mlci: error: "), r.stderr
    return lines[0]


STATE = ("canary", "state.json")


@pytest.mark.parametrize("args,msg", [
    (("canary", "start", "--version", "99"), "not found"),
    (("canary", "start", "--version", "1"), "already the champion"),
    (("canary", "start", "--version", "x"), "not a version number"),
    (("canary", "start", "--version", GOOD, "--steps", "50,10,100"), "must increase"),
    (("canary", "start", "--version", GOOD, "--steps", "10,50"), "end at 100"),
    (("canary", "run"), "give --version"),
    (("canary", "step"), "no canary of digits is running"),
    (("canary", "promote"), "no canary of digits is running"),
    (("canary", "abort"), "no canary of digits is running"),
    (("canary", "status"), "no canary has run"),
    (("canary", "start", "--version", GOOD, "--apply"), "need --backend kserve"),
    (("canary", "start", "--version", GOOD, "--model", "nope"), "'nope' not found"),
])
def test_bad_input_is_one_line_and_moves_nothing(root: Path, args, msg) -> None:
    r = mlci(root, *args)
    assert msg in one_line_error(r)
    assert alias(root, "challenger") is None and alias(root, "champion") == "1"
    assert not root.joinpath(".mlci", *STATE).exists()


def test_start_status_abort_cycle(root: Path) -> None:
    r = mlci(root, "canary", "start", "--version", GOOD, "--steps", "5,100", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["status"] == "running" and res["weight"] == 5
    assert alias(root, "challenger") == GOOD
    assert "is running" in one_line_error(mlci(root, "canary", "start", "--version", WORSE))
    assert "abort it before" in one_line_error(mlci(root, "canary", "run", "--version", WORSE))
    r = mlci(root, "canary", "status")
    assert r.exit_code == 0 and "waiting for" in r.stdout
    r = mlci(root, "canary", "abort", "--reason", "testing abort")
    assert r.exit_code == 0 and "rolled-back" in r.stdout
    assert alias(root, "challenger") is None and alias(root, "champion") == "1"
    st = json.loads(root.joinpath(".mlci", *STATE).read_text())
    assert st["status"] == "rolled-back" and st["weight"] == 0
    evs = [e for e in audit_events(root) if st["id"] in (e.message or "") + (e.reason or "")]
    assert [e.message for e in evs][-1] == "rolled-back" and "testing abort" in evs[-1].reason
    # a damaged state is one line too
    root.joinpath(".mlci", *STATE).write_text("{not json")
    assert "damaged rollout state" in one_line_error(mlci(root, "canary", "status"))
    root.joinpath(".mlci", *STATE).unlink()


def test_serve_bad_input(root: Path) -> None:
    r = run_mlci("serve", "--model", "nope", cwd=root)
    assert r.code == 2 and r.err.strip() == "mlci: error: registered model 'nope' not found " \
                                              "in the registry"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_mlci("serve", "--port", str(port), cwd=root)
    assert r.code == 2 and "cannot listen on 127.0.0.1" in r.err and "Traceback" not in r.err


def test_action_glue_writes_outputs_and_keeps_the_exit_code(root: Path, tmp_path) -> None:
    """`python -m mlci.gha canary` as the `canary` action runs it: inputs from MLCI_*, empty ones
    dropped, outputs to $GITHUB_OUTPUT."""
    out = tmp_path / "github_output"
    p = run_glue("canary", cwd=root, env={
        "MLCI_CONFIG": "mlci.yaml", "MLCI_OUT": ".mlci", "MLCI_VERSION": "",
        "MLCI_STEPS": "5,100", "MLCI_APPLY": "false", "GITHUB_OUTPUT": str(out)})
    assert p.code == 2 and "give --version" in p.err
    text = out.read_text()
    assert "decision<<" in text and "\nerror\n" in text


def test_inconclusive_step_waits_then_rolls_back_at_the_deadline(root: Path) -> None:
    r = mlci(root, "canary", "start", "--version", GOOD, "--steps", "50,100", "--bake", "0",
             "--deadline", "8", "--min-samples", "1000")
    assert r.exit_code == 0, r.output
    r = mlci(root, "canary", "step")  # no traffic yet: inconclusive, within the deadline
    assert r.exit_code == 0 and "running" in r.stdout and "waiting for" in r.stdout
    assert alias(root, "challenger") == GOOD
    # 8.2 s pass: the step started that much earlier (the wall clock is what `step` reads)
    path = root.joinpath(".mlci", *STATE)
    st = json.loads(path.read_text())
    st["step_started"] -= 8.2
    path.write_text(json.dumps(st))
    r = mlci(root, "canary", "step")
    st = json.loads(path.read_text())
    assert st["status"] == "rolled-back" and "still inconclusive" in st["reason"]
    assert "lack of evidence" in st["reason"] and st["history"][-1]["basis"] == "lack of evidence"
    assert alias(root, "challenger") is None and alias(root, "champion") == "1"
