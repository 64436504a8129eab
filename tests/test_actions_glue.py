"""The one glue, `python -m mlci.gha <action>`, in process: the table covers every action.yml,
outputs are multiline-safe, bad input is one line with exit 2 and error outputs, and
fail-on-* turns a failed verdict into a warning. Durations parse as written in workflows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mlci.gha import __main__ as glue
from mlci.gha import actions, outputs

ROOT = Path(__file__).resolve().parents[1]


def parse(path: Path) -> dict[str, str]:
    """The `name<<DELIM` … `DELIM` blocks of a $GITHUB_OUTPUT file, as the runner reads them."""
    out, lines = {}, path.read_text(encoding="utf-8").splitlines()
    while lines:
        name, delim = lines.pop(0).split("<<", 1)
        end = lines.index(delim)
        out[name], lines = "\n".join(lines[:end]), lines[end + 1:]
    return out


def test_every_action_runs_the_one_glue_and_has_a_row() -> None:
    called = set()
    for path in [ROOT / "action.yml", *ROOT.glob("*/action.yml")]:
        for step in yaml.safe_load(path.read_text(encoding="utf-8"))["runs"]["steps"]:
            run = step.get("run", "")
            called.update(re.findall(r'"\$py" -m mlci\.gha ([a-z-]+)', run))
            # nothing else runs Python but setup reading the interpreter's version
            assert all("mlci.gha" in line or "platform" in line
                       for line in run.splitlines() if '"$py"' in line), run
    assert called == set(actions.ACTIONS)
    assert not (ROOT / "scripts" / "action.py").exists()
    assert not (ROOT / "data-update" / "run.py").exists()


def test_outputs_are_multiline_safe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out))
    tokens = iter(["0" * 32, "1" * 32, "2" * 32])
    monkeypatch.setattr(outputs.secrets, "token_hex", lambda n: next(tokens))
    hostile = f"line one\nMLCI_EOF_{'0' * 32}\nverdict=pass"  # tries to end the value early
    outputs.set_outputs({"summary": hostile, "metrics": {"accuracy": 0.5}})
    assert parse(out) == {"summary": hostile, "metrics": '{"accuracy": 0.5}'}


def test_unknown_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert glue.main(["deploy"]) == 2
    assert capsys.readouterr().err.startswith("python -m mlci.gha: error: expected one of")


@pytest.mark.parametrize(("name", "expected"), [
    ("canary", {"decision": "error"}),
    ("data-update", {"status": "error", "model-version": "", "drifted-columns": "[]",
                     "report-path": ""}),
])
def test_a_missing_config_is_one_line_and_error_outputs(name: str, expected: dict[str, str],
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("MLCI_CONFIG", "nope.yaml")
    assert glue.main([name]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mlci: error: config not found: nope.yaml")
    assert parse(tmp_path / "out") == expected


def test_fail_on_gate_off_turns_a_failed_verdict_into_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mlci.yaml").write_text("name: x\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    ran: list[list[str]] = []

    def fake_mlci(args: list[str]) -> tuple[int, dict]:
        ran.append(args)
        return 1, {"verdict": "fail", "metrics": {"accuracy": 0.5}, "failed": ["accuracy"]}

    monkeypatch.setattr(glue, "mlci", fake_mlci)
    monkeypatch.setenv("MLCI_FAIL_ON_GATE", "false")
    monkeypatch.setenv("MLCI_BASELINE", "")
    assert glue.main(["evaluate"]) == 0
    assert ran == [["evaluate", "--json", "--baseline", "auto"]]  # empty input: the default
    assert "::warning title=mlci evaluate::" in capsys.readouterr().err
    assert parse(tmp_path / "out")["verdict"] == "fail"
    monkeypatch.setenv("MLCI_FAIL_ON_GATE", "true")
    assert glue.main(["evaluate"]) == 1


def test_the_child_gets_the_tracking_uri_and_no_empty_inputs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLCI_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("MLCI_VERSION", "  ")
    monkeypatch.setenv("MLCI_JSON", "true")
    env = glue.child_env()
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert "MLCI_TRACKING_URI" not in env and "MLCI_VERSION" not in env
    assert "MLCI_JSON" not in env


def test_the_json_lines_are_the_result_merged_in_order() -> None:
    assert glue.json_result('progress\n{"a": 1}\nnot json\n') == {"a": 1}
    assert glue.json_result("[1, 2]") == {} and glue.json_result("") == {}
    # `mlci run --json` stopped by an error: the stages that finished, then the error
    assert glue.json_result('{"stages": {"validate": {}}}\n{"error": {"exit_code": 2}}\n') == {
        "stages": {"validate": {}}, "error": {"exit_code": 2}}


def fake(monkeypatch: pytest.MonkeyPatch, results: dict[str, tuple[int, dict]]) -> list[str]:
    ran: list[str] = []

    def fake_mlci(args: list[str]) -> tuple[int, dict]:
        ran.append(args[0])
        return results[args[0]]

    monkeypatch.setattr(glue, "mlci", fake_mlci)
    return ran


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "mlci.yaml").write_text("name: x\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    return tmp_path


def test_the_root_action_gives_the_outputs_of_every_stage(
        job: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = fake(monkeypatch, {"run": (1, {
        "report": ".mlci/report.md", "stages": {
            "validate": {"success": True, "report": ".mlci/validation.json"},
            "train": {"run_id": "r" * 32, "model_uri": "models:/x/3", "model_version": "3"},
            "evaluate": {"verdict": "fail", "metrics": {"accuracy": 0.5},
                         "failed": ["accuracy >= 0.9"]}}})})
    assert glue.main(["run"]) == 1
    assert ran == ["run"]  # a failed verdict already has its report: nothing more runs
    assert parse(job / "out") == {
        "passed": "true", "validation-report": str(job / ".mlci" / "validation.json"),
        "run-id": "r" * 32, "model-uri": "models:/x/3", "model-version": "3",
        "verdict": "fail", "metrics": '{"accuracy": 0.5}', "failed": '["accuracy >= 0.9"]',
        "report-path": str(job / ".mlci" / "report.md"), "exit-code": "1"}


def test_invalid_data_blocks_training_and_the_verdict_is_fail(
        job: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake(monkeypatch, {"run": (1, {"report": ".mlci/report.md", "stages": {
        "validate": {"success": False, "report": ".mlci/validation.json"}}})})
    assert glue.main(["run"]) == 1
    values = parse(job / "out")
    assert (values["passed"], values["verdict"], values["model-version"]) == ("false", "fail", "")


@pytest.mark.parametrize(("report_code", "report_path"), [(0, True), (2, False)])
def test_an_error_still_gets_the_report_of_what_ran(
        job: Path, monkeypatch: pytest.MonkeyPatch, report_code: int,
        report_path: bool) -> None:
    ran = fake(monkeypatch, {"run": (3, {"error": {"exit_code": 3}}), "report": (report_code, {})})
    assert glue.main(["run"]) == 3  # the pipeline's own status, whatever the report did
    assert ran == ["run", "report"]
    values = parse(job / "out")
    assert values["verdict"] == "error" and values["exit-code"] == "3"
    assert values["report-path"] == (str(job / ".mlci" / "report.md") if report_path else "")


def test_warnings_cannot_inject_workflow_commands(capsys: pytest.CaptureFixture[str]) -> None:
    outputs.warning("a:b,c", "drift\n::add-mask::x 100%")
    assert capsys.readouterr().err == "::warning title=a%3Ab%2Cc::drift%0A::add-mask::x 100%25\n"
