"""The command line around the commands: -q/-v, JSON error objects under --json, shell
completion of commands and option values, help that says what the defaults are."""

from __future__ import annotations

import json
import logging
import os
from email.message import Message
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlci.cli import cli, main


@pytest.fixture(autouse=True)
def _restore_env(monkeypatch):
    for var in ("MLCI_PROGRESS", "MLCI_VERBOSE", "MLCI_DEBUG", "MLCI_JSON", "MLCI_QUIET"):
        monkeypatch.delenv(var, raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:], root.level = handlers, level  # -v configured logging for this process


def _main(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return int(exc.value.code), out, err


def test_json_errors_are_objects_on_stdout(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = _main(["evaluate", "--json", "-c", "missing.yaml"], capsys)
    assert code == 2 and err.startswith("mlci: error: missing.yaml")
    assert json.loads(out) == {"error": {"exit_code": 2, "kind": "input",
                                         "message": "missing.yaml: config file not found"}}
    code, out, _ = _main(["evaluate", "--json", "--baseline"], capsys)  # click's usage error
    assert code == 2 and json.loads(out)["error"]["kind"] == "usage"
    monkeypatch.setenv("MLCI_JSON", "1")  # the option's environment variable, as everywhere
    code, out, _ = _main(["report", "-c", "missing.yaml"], capsys)
    assert code == 2 and set(json.loads(out)["error"]) == {"exit_code", "kind", "message"}


def test_without_json_stdout_stays_empty_on_error(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = _main(["evaluate", "-c", "missing.yaml"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1


def test_quiet_turns_progress_off_and_verbose_shows_library_logs(tmp_path, capsys,
                                                                 monkeypatch) -> None:
    from mlci import progress
    from mlci.registry.tracking import quiet_mlflow

    monkeypatch.chdir(tmp_path)
    _main(["-q", "evaluate", "-c", "missing.yaml"], capsys)
    with open(os.devnull, "w") as sink:
        assert progress.mode(sink) == progress.OFF
    monkeypatch.delenv("MLCI_PROGRESS")
    logging.getLogger("mlflow").setLevel(logging.NOTSET)
    _main(["-v", "evaluate", "-c", "missing.yaml"], capsys)
    quiet_mlflow()
    assert os.environ["MLCI_VERBOSE"] == "1" and logging.getLogger("mlflow").level != logging.ERROR
    code, _, err = _main(["-q", "-v", "evaluate"], capsys)
    assert code == 2 and "exclude each other" in err


def _complete(words: str) -> list[str]:
    r = CliRunner().invoke(cli, [], prog_name="mlci", env={
        "_MLCI_COMPLETE": "bash_complete", "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))})
    return [line.split(",", 1)[1] for line in r.output.splitlines()]


def test_shell_completion_of_commands_choices_and_free_form_values() -> None:
    assert "evaluate" in _complete("mlci ev") and "serve" in _complete("mlci se")
    assert _complete("mlci evaluate --baseline ") == ["auto", "registry", "none", "git:",
                                                      "file:"]
    assert _complete("mlci promote --to ch") == ["champion"]
    assert _complete("mlci monitor --alias ") == ["champion", "challenger", "staging",
                                                  "candidate"]
    assert _complete("mlci canary start --backend ") == ["local", "kserve"]


def test_help_names_the_p95_default() -> None:
    r = CliRunner().invoke(cli, ["canary", "start", "--help"], prog_name="mlci")
    text = " ".join(r.output.split())
    assert "--latency-quantile" in text and "(0.95: p95)" in text and "default: 0.95" in text


def test_root_help_documents_completion() -> None:
    r = CliRunner().invoke(cli, ["--help"], prog_name="mlci")
    assert '_MLCI_COMPLETE=bash_source mlci' in r.output and "-q, --quiet" in r.output


def test_serve_help_points_at_a_url_not_a_file_the_wheel_lacks(monkeypatch) -> None:
    import importlib.metadata

    from mlci.commands import _options

    meta = Message()
    meta["Project-URL"] = "Documentation, https://github.com/acme/mlci-actions/tree/v1.0.0/docs"
    monkeypatch.setattr(importlib.metadata, "metadata", lambda name: meta)
    assert _options.docs_url("serving.md") == (
        "https://github.com/acme/mlci-actions/tree/v1.0.0/docs/serving.md")
    from mlci.commands import serve

    r = CliRunner().invoke(serve.command, ["--help"])
    assert "docs/serving.md" not in r.output.replace("/docs/serving.md", "")
