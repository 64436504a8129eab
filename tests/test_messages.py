"""Messages for the cases that used to confuse: a golden file missing a column, a monitoring
window with labels but no predictions, an update that has nowhere to push its data."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
from conftest import run_mlci


def test_a_golden_file_missing_a_column_says_so(iris: Path) -> None:
    golden = iris / "data" / "golden.csv"
    pd.read_csv(golden).drop(columns=["petal_width"]).to_csv(golden, index=False)
    r = run_mlci("validate", "--no-docs", cwd=iris)
    assert r.code == 1
    assert "column 'petal_width' is missing from data/golden.csv" in r.err
    assert "computed nothing" not in r.out + r.err and "list index" not in r.out + r.err


def test_monitor_names_the_missing_prediction_column() -> None:
    from mlci.flows.monitor import Window, decay

    labels = pd.Series(["setosa"] * 30)
    cfg = SimpleNamespace(data=SimpleNamespace(target="species"), monitor=SimpleNamespace())
    frame = pd.DataFrame({"x": range(30)})
    dec = decay(Window(frame, labels, None, None, "w.csv"), {"metric": "accuracy"}, cfg)
    assert dec["decayed"] is None and dec["n"] == 30
    assert dec["status"].startswith("not measured: 30 labelled rows but no 'prediction' column")
    dec = decay(Window(frame, None, None, None, "w.csv"), {"metric": "accuracy"}, cfg)
    assert dec["status"] == "not measured: no labels (no 'species' column in the window)"


def test_the_action_turns_a_warning_into_an_annotation(capsys) -> None:
    from mlci.gha.actions import _data_update

    out = _data_update(0, {"status": "updated", "model_version": 2, "report": "",
                           "warnings": ["no DVC remote: the new data was not pushed"]})
    assert out["status"] == "updated"
    err = capsys.readouterr().err
    assert "::warning title=mlci data update::no DVC remote: the new data was not pushed" in err
